"""The layout's rules, checked on the source: imports point one way, no cycles, no private names across
modules, backends import only core and ops, the store only core, one place writes driver variables."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "clmace"


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, tuple[Path, ast.Module]]:
    return {_module(p): (p, ast.parse(p.read_text(encoding="utf-8"))) for p in sorted(ROOT.rglob("*.py"))}


MODULES = _modules()


def _imports(name: str) -> list[tuple[str, list[str]]]:
    """(imported module, names taken from it) for every import in a module, function-level ones too."""
    path, tree = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend((a.name, []) for a in node.names if a.name.startswith("clmace"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(up + ([base] if base else []))
            if not base.startswith("clmace"):
                continue
            names = [a.name for a in node.names]
            # `from pkg import submodule` depends on the submodule
            subs = [f"{base}.{n}" for n in names if f"{base}.{n}" in MODULES]
            out.extend((s, []) for s in subs)
            rest = [n for n in names if f"{base}.{n}" not in MODULES]
            if rest or not subs:
                out.append((base, rest))
    return out


def _graph() -> dict[str, set[str]]:
    return {m: {dep for dep, _ in _imports(m) if dep != m and dep in MODULES} for m in MODULES}


def test_no_import_cycles() -> None:
    """Module imports (function-level ones included) form no cycle; packages only import their own
    parent package's __init__ re-exports at the top (clmace itself excepted: its __init__ is the public API)."""
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w == "clmace":  # the public API module re-exports the session; deps on it are lazy by design
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for m in graph:
        if m not in index:
            visit(m)
    assert cycles == []


def test_no_private_names_across_modules() -> None:
    """`from x import _name` only within one module's own package-private helpers: never across modules."""
    bad = [(m, dep, n) for m in MODULES for dep, names in _imports(m) for n in names
           if n.startswith("_") and not n.startswith("__") and dep != m]
    assert bad == []


@pytest.mark.parametrize(("package", "allowed"), [
    ("clmace.backends", ("clmace.core", "clmace.ops", "clmace.backends")),
    ("clmace.store", ("clmace.core", "clmace.store")),
    ("clmace.ops", ("clmace.core", "clmace.ops")),
    ("clmace.core", ("clmace.core",)),
    ("clmace.frontend", ("clmace.core", "clmace.ops", "clmace.frontend")),
    ("clmace.ray", ("clmace.core", "clmace.session", "clmace.ray")),
])
def test_layers_import_only_what_is_below(package: str, allowed: tuple[str, ...]) -> None:
    """Backends import only core and ops; the store only core; ops only core; the frontend only core and ops;
    the Ray layer only core and the session."""
    bad = sorted({(m, dep) for m in MODULES if m == package or m.startswith(package + ".")
                  for dep, _ in _imports(m)
                  if dep != "clmace" and not any(dep == a or dep.startswith(a + ".") for a in allowed)})
    assert bad == []


def _writes_environ(tree: ast.Module) -> bool:
    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, ast.Assign) else []
        for t in targets:
            if isinstance(t, ast.Subscript) and ast.unparse(t.value) == "os.environ":
                return True
        if isinstance(node, ast.Call):
            text = ast.unparse(node.func)
            if text in ("os.environ.update", "os.environ.setdefault", "os.environ.pop", "os.putenv",
                        "os.unsetenv"):
                return True
    return False


def test_one_place_sets_driver_variables() -> None:
    """Below the session nothing writes os.environ except core/drivers.py (set_driver_variable)."""
    writers = sorted(m for m, (_, tree) in MODULES.items() if _writes_environ(tree))
    assert writers == ["clmace.core.drivers"]


def test_every_module_says_what_it_owns() -> None:
    """Each module starts with a docstring."""
    assert [m for m, (_, tree) in MODULES.items() if not ast.get_docstring(tree)] == []


def test_readme_tree_matches_the_packages() -> None:
    """Every package named in the README's Architecture section exists, and every package is named there."""
    readme = (ROOT.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Architecture", 1)[1].split("\n## ", 1)[0]
    packages = sorted(_module(p.parent).removeprefix("clmace.").replace(".", "/") + "/"
                      for p in ROOT.rglob("__init__.py") if p.parent != ROOT)
    missing = [p for p in packages if p not in section]
    assert missing == []
