"""Renders the report data as Markdown; charts are written as PNG files beside the .md file."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

from clmace.workflow.report.html import SECTIONS, fmt_bytes, fmt_num
from clmace.workflow.report.plots import all_charts

TITLES = dict(SECTIONS)


def _cell(x: object) -> str:
    return str(x).replace("|", "\\|").replace("\n", " ")


def _table(head: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(_cell(c) for c in r) + " |" for r in rows]
    return lines + [""]


def _h(key: str) -> list[str]:
    return [f"## {TITLES[key]}", ""]


def _model(data: dict) -> list[str]:
    m = data.get("model")
    if not m:
        return _h("model") + ["The model could not be analysed.", ""]
    opt, passes = m["optimized"], m.get("passes") or {}
    flops = opt.get("flops")
    out = _h("model") + _table(["", ""], [
        ("file", f"`{m['path']}` ({m['format']}, opset {m['opset']}, {fmt_bytes(m['size_bytes'])})"),
        ("parameters", f"{m['parameters']:,}"),
        ("FLOPs", f"{flops:,} ({flops / 1e9:.3f} GFLOP)" if flops else "unknown"),
        ("nodes", f"{passes.get('nodes_before', '?')} before passes -> {opt['nodes']} after")])
    out += _table(["", "name", "dtype", "shape"], [(kind, f"`{t['name']}`", t["dtype"], t["shape"])
                                                   for kind, g in (("input", m["inputs"]), ("output", m["outputs"]))
                                                   for t in g])
    return out + _table(["op (after passes)", "nodes"], opt["ops"].items())


def _program(data: dict) -> list[str]:
    p = data.get("program_file") or {}
    out = _h("program-file")
    if not p.get("produced"):
        return out + [f"No compiled-program file was produced: {p.get('reason', 'the step did not run')}", ""]
    out += [f"`{p['path']}`, {fmt_bytes(p['size_bytes'])}.", ""]
    if p.get("inspect_error"):
        out += [f"Not inspected: {p['inspect_error']}", ""]
    info = p.get("inspect")
    if isinstance(info, dict):
        out += _table(["field", "value"], [(k, fmt_num(v) if not isinstance(v, (list, dict)) else
                                            f"{len(v)} entries") for k, v in info.items()])
    return out


def _bench(data: dict, img: dict[str, str]) -> list[str]:
    b = data.get("bench") or {}
    out = _h("startup")
    st = b.get("startup") or {}
    if "startup" in img:
        out += [f"![start-up]({img['startup']})", ""]
    out += _table(["process", "import ms", "session ms", "first run ms", "to first result s"],
                  [(k, f"{r['import_s'] * 1e3:.0f}", f"{r['session_s'] * 1e3:.0f}",
                    f"{r['first_run_s'] * 1e3:.0f}", f"{r['to_first_result_s']:.2f}")
                   for k, r in st.items() if isinstance(r, dict) and "process_s" in r])
    s = b.get("steady") or {}
    out += _h("latency") + ([f"![latency]({img['latency']})", ""] if "latency" in img else [])
    out += _table(["engine", "median ms", "p90 ms", "p99 ms", "inferences/s"],
                  [(e, f"{s[e]['median_ms']:.2f}", f"{s[e]['p90_ms']:.2f}", f"{s[e]['p99_ms']:.2f}",
                    f"{s[e]['throughput_per_s']:.1f}") for e in ("clmace", "onnxruntime") if s.get(e)])
    out += _h("per-op") + ([f"![per-op time]({img['ops']})", ""] if "ops" in img else [])
    prof = s.get("profile")
    if prof:
        out += _table(["node", "op", "ms", "share"], [(f"`{r['node']}`", r["op"], f"{r['ms']:.3f}", f"{r['share']:.1%}")
                                                      for r in prof["top_nodes"][:12]])
    elif s.get("profile_table"):
        out += ["```", s["profile_table"], "```", ""]
    return out


def _accuracy(data: dict, img: dict[str, str]) -> list[str]:
    v = data.get("validation")
    out = _h("accuracy")
    if not v:
        return out + ["Validation did not run.", ""]
    out += [f"clmace on {v['device']} ({v['precision']}) vs onnxruntime; cosine threshold {v['threshold']}.", ""]
    out += _table(["output", "shape", "cosine", "SQNR dB", "max abs", "max rel", "top-1", "result"],
                  [(m["name"], m["shape"], fmt_num(m["cosine"], 8), fmt_num(m["sqnr_db"], 5), fmt_num(m["max_abs"], 3),
                    fmt_num(m["max_rel"], 3), "-" if m["top1"] is None else f"{m['top1']:.0%}",
                    "PASS" if m["passed"] else "FAIL") for m in v["outputs"]])
    if v.get("layers") is not None:
        out += [f"{len(v['layers'])} layers compared; first divergent layer: {v.get('first_divergent') or 'none'}.", ""]
        if "layers" in img:
            out += [f"![per-layer]({img['layers']})", ""]
    return out


def render_markdown(data: dict, path: str) -> str:
    """The Markdown text for data; charts are saved as <stem>_img/*.png next to path."""
    charts = all_charts(data)
    stem = os.path.splitext(os.path.basename(path))[0]
    folder = os.path.join(os.path.dirname(os.path.abspath(path)), f"{stem}_img")
    img = {}
    if charts:
        os.makedirs(folder, exist_ok=True)
    for name, png in charts.items():
        with open(os.path.join(folder, f"{name}.png"), "wb") as f:
            f.write(png)
        img[name] = f"{stem}_img/{name}.png"
    o, d = data["overview"], data["device"]
    out = [f"# clmace report: {o['model']} on {o['device']}", ""] + _h("overview")
    out += _table(["", ""], [("project", f"{o['project']} {o['version']}"), ("generated", o["date"]),
                             ("precision", o["precision"]), ("command line", f"`{o['command']}`")])
    out += _h("device") + ([f"Error: {d['error']}", ""] if d.get("error") else []) + _table(["", ""], d["rows"])
    out += _model(data) + _program(data)
    out += _h("steps") + _table(["step", "status", "time s", "result"],
                                [(s["name"], s["status"], f"{s['seconds']:.2f}", s["detail"]) for s in data["steps"]])
    out += _bench(data, img) + _accuracy(data, img) + _h("troubleshooting")
    for item in data.get("troubleshooting", []):
        out += [f"- **{item['level']}: {item['title']}**  ", "  " + item["detail"].replace("\n", "\n  "), ""]
    return "\n".join(out) + "\n"
