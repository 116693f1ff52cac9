"""Troubleshooting notes generated from what actually happened during the report's steps."""

from __future__ import annotations

import re

Item = dict  # {"level": "error" | "warning" | "info" | "ok", "title": str, "detail": str}

_HINTS = (
    (re.compile(r"no OpenCL platform|DeviceError|ICD|clGetPlatformIDs", re.I),
     "Install an OpenCL driver (pip install pocl-binary-distribution gives a CPU device) or point "
     "OCL_ICD_VENDORS at a directory of .icd files; `clmace` then lists the device as opencl:N."),
    (re.compile(r"fp16|half", re.I), "This device cannot store fp16 tensors; use --precision fp32."),
    (re.compile(r"onnxruntime is not installed|No module named 'onnxruntime'", re.I),
     "Install the reference engine: pip install onnxruntime."),
    (re.compile(r"dynamic shape", re.I), "Fix the input's shape with --input-shape NAME=D0,D1,..."),
    (re.compile(r"UnsupportedOp|not implement", re.I),
     "The model uses an op this runtime lacks; `clmace info MODEL` lists the ops after the passes."),
    (re.compile(r"No module named 'clmace\.runtime\.opencl", re.I),
     "This build of clmace has no OpenCL runtime yet; use --device cpu."),
)
_LOG_LINE = re.compile(r"(WARNING|ERROR|reject|corrupt|mismatch|fall(s|ing)? back)", re.I)


def _hint(text: str) -> str:
    return next((hint for pattern, hint in _HINTS if pattern.search(text)), "")


def _step_items(data: dict) -> list[Item]:
    items = []
    for step in data.get("steps", []):
        if step["status"] == "failed":
            hint = _hint(step["detail"])
            items.append({"level": "error", "title": f"step '{step['name']}' failed",
                          "detail": step["detail"] + (f"\n\nWhat to do: {hint}" if hint else "")})
    err = (data.get("device") or {}).get("error")
    if err:
        items.append({"level": "warning", "title": "the OpenCL device could not be queried",
                      "detail": err + (f"\n\nWhat to do: {_hint(err)}" if _hint(err) else "")})
    return items


def _validation_items(data: dict) -> list[Item]:
    v = data.get("validation")
    if not v:
        return []
    items = []
    for m in v["outputs"]:
        if not m["passed"]:
            why = m["note"] or f"cosine {m['cosine']} < threshold {v['threshold']}"
            items.append({"level": "error", "title": f"output {m['name']!r} failed validation",
                          "detail": f"{why}; SQNR {m['sqnr_db']} dB, max abs error {m['max_abs']:.3g}."})
    if v.get("first_divergent"):
        row = next(r for r in v["layers"] if r["name"] == v["first_divergent"])
        items.append({"level": "error", "title": "first divergent layer: " + row["name"],
                      "detail": f"op {row['op']}, shape {row['shape']}, cosine {row['cosine']}. Every layer before "
                                "it matches onnxruntime, so look at this node's kernel and attributes first."})
    for note in v.get("notes", []):
        items.append({"level": "warning" if "unavailable" in note else "info", "title": "validation note",
                      "detail": note})
    dev = data.get("device") or {}
    if v.get("precision") == "fp16" and dev.get("kind") == "opencl" and dev.get("fp16") is False:
        items.append({"level": "warning", "title": "fp16 requested, but the device lacks cl_khr_fp16",
                      "detail": "The runtime cannot store tensors as half; use --precision fp32."})
    return items


def _bench_items(data: dict) -> list[Item]:
    b = data.get("bench")
    if not b:
        return []
    items: list[Item] = []
    steady = b["steady"]
    for note in steady.get("notes", []):
        items.append({"level": "warning", "title": "benchmark note", "detail": note})
    if steady.get("fallback_nodes"):
        nodes = steady["fallback_nodes"]
        items.append({"level": "warning", "title": f"{len(nodes)} node(s) fell back to the CPU",
                      "detail": "These ran on the host, costing copies each way: " + ", ".join(map(str, nodes[:20]))})
    if steady.get("store_rejections"):
        rejected = steady["store_rejections"]
        items.append({"level": "warning", "title": f"the compiled-program store rejected {len(rejected)} entr"
                      + ("y" if len(rejected) == 1 else "ies"), "detail": "\n".join(rejected[:10])})
    cl, ort = steady.get("clmace"), steady.get("onnxruntime")
    if cl and ort and b["device"] == "cpu":
        items.append({"level": "info", "title": "the cpu device is a NumPy reference runtime",
                      "detail": f"Its median {cl['median_ms']:.1f} ms is {cl['median_ms'] / ort['median_ms']:.0f}x "
                                f"onnxruntime's {ort['median_ms']:.2f} ms. It exists to check results, not for "
                                "speed; deploy with --device opencl."})
    # p90 means little below ~10 samples; a p90 50% above the median means something else used the machine.
    noisy = [e for e in ("clmace", "onnxruntime") if steady.get(e) and b.get("runs", 0) >= 10
             and steady[e]["p90_ms"] > 1.5 * steady[e]["median_ms"]]
    if noisy:
        spread = ", ".join(f"{e} p90 {steady[e]['p90_ms']:.1f} ms vs median {steady[e]['median_ms']:.1f} ms"
                           for e in noisy)
        items.append({"level": "warning", "title": "latency measurements are noisy",
                      "detail": f"{spread}. Other processes were probably competing for the CPU; compare medians "
                                "only, or re-run on an idle machine (more --runs helps too)."})
    startup = b.get("startup") or {}
    for step in ("cold", "warm"):
        lines = [ln for ln in (startup.get(step, {}).get("stderr") or "").splitlines() if _LOG_LINE.search(ln)]
        if lines:
            items.append({"level": "warning", "title": f"the {step}-start process logged problems",
                          "detail": "\n".join(lines[-10:])})
    if "cold" in startup and "warm" in startup and b["device"] != "cpu":
        cold, warm = startup["cold"]["to_first_result_s"], startup["warm"]["to_first_result_s"]
        if warm > 0.8 * cold:
            items.append({"level": "warning", "title": "the warm start was not faster than the cold start",
                          "detail": f"cold {cold:.2f} s, warm {warm:.2f} s: the compiled-program file or the "
                                    "driver cache was not reused. Check the warm process's log above and the "
                                    "compiled-program file section."})
    return items


def _program_items(data: dict) -> list[Item]:
    p = data.get("program_file")
    # On cpu no file is expected; after a failed bench its absence is a consequence, not a separate problem.
    if not p or (data.get("device") or {}).get("kind") == "cpu" or p.get("consequence"):
        return []
    if not p.get("produced"):
        return [{"level": "warning", "title": "no compiled-program file was produced", "detail": p["reason"]}]
    if p.get("inspect_error"):
        return [{"level": "warning", "title": "the compiled-program file could not be inspected",
                 "detail": p["inspect_error"]}]
    return []


def troubleshoot(data: dict) -> list[Item]:
    """Every problem seen in data, worst first; one 'ok' item when there is nothing to report."""
    items = _step_items(data) + _validation_items(data) + _bench_items(data) + _program_items(data)
    order = {"error": 0, "warning": 1, "info": 2}
    items.sort(key=lambda i: order[i["level"]])
    if not any(i["level"] in ("error", "warning") for i in items):
        items.insert(0, {"level": "ok", "title": "no problems detected",
                         "detail": "Every step succeeded and every output passed validation."})
    return items
