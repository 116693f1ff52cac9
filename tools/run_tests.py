"""Run the test suite in several pytest processes and print one combined result.

Why: PoCL keeps the LLVM state and the loaded code of every program it ever compiled until the process ends
(~4-50 MB a program), and the OpenCL and tuner tests compile thousands of distinct programs. One pytest process
for everything outgrows the 24 GB of our machines; one process per group stays under ~7 GB.

    python tools/run_tests.py            # the whole suite (what .ci/run runs)
    python tools/run_tests.py -x -k conv # extra arguments go to every pytest process
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Directories whose files each get a process of their own (they compile many OpenCL programs).
PER_FILE = ("opencl", "tuner", "hardening")
COUNT = re.compile(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed|deselected)")


def groups() -> list[list[str]]:
    """Test paths, one list per pytest process."""
    tests = ROOT / "tests"
    out = [[str(p.relative_to(ROOT)) for p in sorted(tests.glob("test_*.py"))]]
    for sub in sorted(d for d in tests.iterdir() if d.is_dir() and any(d.glob("test_*.py"))):
        files = [str(p.relative_to(ROOT)) for p in sorted(sub.glob("test_*.py"))]
        out.extend([f] for f in files) if sub.name in PER_FILE else out.append([str(sub.relative_to(ROOT))])
    return [g for g in out if g]


def main(argv: list[str]) -> int:
    """Run every group; exit non-zero if any group fails or collects no test."""
    totals: dict[str, int] = {}
    failed_groups = []
    for paths in groups():
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", *argv, *paths], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        lines = proc.stdout.rstrip().splitlines()
        summary = lines[-1] if lines else ""
        print(f"{' '.join(paths)}: {summary}", flush=True)
        if proc.returncode != 0:  # includes 5: pytest collected nothing, which must not pass silently
            failed_groups.append(paths)
            print("\n".join(lines[-60:]), flush=True)
        for line in lines:
            if line.startswith(("ONNX node suite", "ONNX node suite on OpenCL")):
                print(line, flush=True)
        for number, word in COUNT.findall(summary):
            key = "errors" if word.startswith("error") else word
            totals[key] = totals.get(key, 0) + int(number)
    extra = "".join(f", {totals[k]} {k}" for k in ("skipped", "errors", "deselected") if totals.get(k))
    print(f"{totals.get('passed', 0)} passed, {totals.get('failed', 0)} failed{extra}")
    if failed_groups:
        print("failing groups: " + "; ".join(" ".join(g) for g in failed_groups))
    return 1 if failed_groups else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
