"""Renders the report data as one self-contained HTML page (inline CSS, charts as base64 PNG)."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from html import escape

from clmace.workflow.report.plots import all_charts
from clmace.workflow.report.style import CSS

SECTIONS = [("overview", "Overview"), ("device", "Target device"), ("model", "Model"),
            ("program-file", "Compiled-program file"), ("steps", "Workflow steps"), ("startup", "Start-up"),
            ("latency", "Latency"), ("per-op", "Per-op time"), ("accuracy", "Accuracy"),
            ("troubleshooting", "Troubleshooting")]
TITLES = dict(SECTIONS)


def fmt_bytes(n: float | None) -> str:
    """1.2 MiB style sizes."""
    if n is None:
        return "–"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return str(n)


def fmt_num(x: object, digits: int = 4) -> str:
    """Floats with `digits` significant digits, everything else as str."""
    if isinstance(x, float):
        return f"{x:.{digits}g}"
    return str(x)


def _e(x: object) -> str:
    return escape(str(x))


def _table(head: Sequence[str], rows: Iterable[Sequence[object]], num: Sequence[int] = ()) -> str:
    th = "".join(f'<th class="num">{_e(h)}</th>' if i in num else f"<th>{_e(h)}</th>" for i, h in enumerate(head))
    body = "".join("<tr>" + "".join(f'<td class="num">{c}</td>' if i in num else f"<td>{c}</td>"
                                    for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _kv(rows: Iterable[tuple[str, object]]) -> str:
    return '<table class="kv">' + "".join(f"<tr><td>{_e(k)}</td><td>{v}</td></tr>" for k, v in rows) + "</table>"


def _img(png: bytes | None, alt: str) -> str:
    if not png:
        return ""
    return f'<img class="chart" alt="{_e(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _section(key: str, body: str, lead: str = "") -> str:
    lead_html = f'<p class="lead">{lead}</p>' if lead else ""
    return f'<section id="{key}"><h2>{_e(TITLES[key])}</h2>{lead_html}{body}</section>'


def _card(label: str, value: str, sub: str = "", cls: str = "") -> str:
    return (f'<div class="card"><div class="label">{_e(label)}</div><div class="value {cls}">{value}</div>'
            f'<div class="sub">{sub}</div></div>')


def _cards(data: dict) -> str:
    cards = []
    v = data.get("validation")
    if v:
        worst = min((m["cosine"] for m in v["outputs"] if isinstance(m["cosine"], float)), default=float("nan"))
        cls = "pass" if v["passed"] else "fail"
        cards.append(_card("validation", "PASS" if v["passed"] else "FAIL", f"cosine {worst:.6f} (≥ {v['threshold']})",
                           cls))
        top1 = [m["top1"] for m in v["outputs"] if m["top1"] is not None]
        if top1:
            cards.append(_card("top-1 agreement", f"{min(top1):.0%}", "argmax vs onnxruntime"))
    steady = (data.get("bench") or {}).get("steady") or {}
    if steady.get("clmace"):
        ort = steady.get("onnxruntime")
        sub = f"onnxruntime {ort['median_ms']:.2f} ms" if ort else "no onnxruntime baseline"
        cards.append(_card("median latency", f"{steady['clmace']['median_ms']:.2f} ms", sub))
    startup = (data.get("bench") or {}).get("startup") or {}
    if "cold" in startup and "warm" in startup:
        cold, warm = startup["cold"]["to_first_result_s"], startup["warm"]["to_first_result_s"]
        cards.append(_card("start-up to first result", f"{warm:.2f} s", f"warm; cold {cold:.2f} s"))
    issues = [i for i in data.get("troubleshooting", []) if i["level"] in ("error", "warning")]
    cards.append(_card("issues", str(len(issues)), '<a href="#troubleshooting">see troubleshooting</a>',
                       "fail" if issues else "pass"))
    return '<div class="cards">' + "".join(cards) + "</div>"


def overview(data: dict) -> str:
    """Summary cards and run facts."""
    o = data["overview"]
    rows = [("project", f"{_e(o['project'])} {_e(o['version'])}"), ("model", f"<code>{_e(o['model'])}</code>"),
            ("device", _e(o["device"])), ("precision", _e(o["precision"])), ("generated", _e(o["date"])),
            ("command line", f"<code>{_e(o['command'])}</code>")]
    return _section("overview", _cards(data) + _kv(rows))


def device(data: dict) -> str:
    """The OpenCL device (or host CPU) the numbers were measured on."""
    d = data["device"]
    lead = ("Measured on the host CPU with clmace's NumPy runtime." if d["kind"] == "cpu"
            else "OpenCL device as the runtime selected it, and the host it runs in.")
    err = f'<p><span class="badge error">error</span> {_e(d["error"])}</p>' if d.get("error") else ""
    return _section("device", err + _kv((k, _e(v)) for k, v in d["rows"]), lead)


def _ops_table(ops: dict) -> str:
    top = max(ops.values(), default=1)
    rows = [(f"<code>{_e(op)}</code>", n, f'<div class="bar" style="width:{100 * n / top:.0f}%"></div>')
            for op, n in ops.items()]
    return _table(["op", "nodes", ""], rows, num=(1,)).replace("<td><div", '<td class="bar-cell"><div')


def model(data: dict) -> str:
    """Inputs, outputs, size, parameters, FLOPs, the passes' effect and op histograms."""
    m = data.get("model")
    if not m:
        return _section("model", '<p class="muted">The model could not be analysed (see workflow steps).</p>')
    opt, passes = m["optimized"], m.get("passes") or {}
    flops = opt.get("flops")
    facts = [("file", f"<code>{_e(m['path'])}</code> ({_e(m['format'])}, opset {m['opset']})"),
             ("file size", fmt_bytes(m["size_bytes"])),
             ("converted-model file", fmt_bytes(data.get("converted_bytes"))),
             ("parameters", f"{m['parameters']:,}"),
             ("FLOPs per inference", f"{flops:,} ({flops / 1e9:.3f} GFLOP)" if flops else "unknown (dynamic shapes)"),
             ("nodes", f"{passes.get('nodes_before', (m.get('original') or {}).get('nodes', '?'))} before passes → "
                       f"{opt['nodes']} after")]
    changes = ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in passes.items() if not k.startswith("nodes") and v)
    if changes:
        facts.append(("pass effects", _e(changes)))
    tensors = _table(["", "name", "dtype", "shape"],
                     [(kind, f"<code>{_e(t['name'])}</code>", t["dtype"], _e(t["shape"]))
                      for kind, group in (("input", m["inputs"]), ("output", m["outputs"])) for t in group])
    hist = '<div class="grid2"><div><h3>ops after passes</h3>' + _ops_table(opt["ops"]) + "</div>"
    if m.get("original"):
        hist += "<div><h3>ops in the ONNX file</h3>" + _ops_table(m["original"]["ops"]) + "</div>"
    return _section("model", _kv(facts) + "<h3>tensors</h3>" + tensors + hist + "</div>")


def _generic(value: object, depth: int = 0) -> str:
    """Any inspect_path() result: scalars inline, dicts as key/value tables, record lists as tables."""
    if isinstance(value, dict):
        return _kv((k, _generic(v, depth + 1)) for k, v in value.items())
    if isinstance(value, list) and value and all(isinstance(r, dict) for r in value):
        keys = list(dict.fromkeys(k for r in value for k in r))
        rows = [[_e(fmt_num(r.get(k, ""))) for k in keys] for r in value[:40]]
        more = f'<p class="muted">… {len(value) - 40} more</p>' if len(value) > 40 else ""
        return _table(keys, rows) + more
    if isinstance(value, list):
        return _e(", ".join(map(str, value[:40])) + (" …" if len(value) > 40 else ""))
    if isinstance(value, bytes):
        return f"<code>{len(value)} bytes</code>"
    return _e(fmt_num(value)) if depth else f"<code>{_e(value)}</code>"


def _ok(flag: object) -> str:
    if flag is None:
        return "none"
    return '<span class="badge ok">ok</span>' if flag else '<span class="badge error">MISMATCH</span>'


def _clmace_file(info: dict) -> str:
    """clmace's own format: header facts, then each device section's programs."""
    body = _kv([("format", f"clmace compiled-program file, format version {_e(info['format_version'])}"),
                ("written by", f"clmace {_e(info['engine_version'])}, {_e(info['created'])}"),
                ("programs", f"{info['program_count']} in {len(info['sections'])} device section(s), "
                             f"{fmt_bytes(info['binary_bytes'])} of binaries and driver blobs"),
                ("tuned records", str(info["tuned_count"])),
                ("checksums", f"file CRC32 {_ok(info['file_crc_ok'])} · entries {_ok(info['entries_crc_ok'])}")])
    for sec in info["sections"]:
        rows = [(f"<code>{_e(e['name'])}</code>", fmt_bytes(e["binary_size"] + e["driver_blob_bytes"]),
                 e["driver_blobs"], _ok(e["crc_ok"]), f"<code>{_e(e['build_options'])}</code>")
                for e in sec["entries"]]
        body += (f"<h3>{_e(sec['device'])}</h3><p class=\"muted\">{sec['entry_count']} programs, "
                 f"{sec['tuned_count']} tuned records</p>"
                 + _table(["kernel", "size", "driver blobs", "CRC", "build options"], rows, num=(1, 2)))
    return body


def program_file(data: dict) -> str:
    """The compiled-program file the cold start wrote: format, kernels, size, checksums, tuned records."""
    p = data.get("program_file")
    if not p:
        return _section("program-file", '<p class="muted">This step did not run.</p>')
    if not p["produced"]:
        return _section("program-file", f'<p>No compiled-program file was produced: {_e(p["reason"])}</p>')
    body = _kv([("file", f"<code>{_e(p['path'])}</code>"), ("size", fmt_bytes(p["size_bytes"]))])
    if p.get("inspect_error"):
        body += f'<p><span class="badge warning">not inspected</span> {_e(p["inspect_error"])}</p>'
    info = p.get("inspect")
    if isinstance(info, dict) and info.get("format") == "clmace":
        body += _clmace_file(info)
    elif info is not None:
        body += "<h3>contents (clmace.workflow.inspect)</h3>" + _generic(info)
    return _section("program-file", body, "Written by the cold-start process into its fresh CLMACE_CACHE_DIR; "
                    "the warm-start process read it back.")


def steps(data: dict) -> str:
    """Each workflow step with its status and time."""
    rows = [(f'<span class="nowrap">{_e(s["name"])}</span>', f'<span class="badge {_e(s["status"])}">'
             f'{_e(s["status"])}</span>', f'<span class="nowrap">{s["seconds"]:.2f} s</span>',
             _e(_first_line(s["detail"]))) for s in data.get("steps", [])]
    return _section("steps", _table(["step", "status", "time", "result"], rows, num=(2,)))


def _first_line(text: str, width: int = 180) -> str:
    """The first line of text, shortened; the full text is in the troubleshooting section."""
    lines = text.strip().splitlines() or [""]
    if len(lines) == 1 and len(lines[0]) <= width:
        return lines[0]
    return lines[0][:width].rstrip() + " … (see troubleshooting)"


def startup(data: dict, charts: dict) -> str:
    """Fresh-process start-up, cold (no file) vs warm (with the compiled-program file)."""
    st = (data.get("bench") or {}).get("startup")
    if not st:
        why = "the benchmark step failed (see troubleshooting)" if data.get("bench") is None else \
            "it was skipped (--no-fresh-process)"
        return _section("startup", f'<p class="muted">Start-up was not measured: {why}.</p>')
    rows = [(name, f"{r['import_s'] * 1e3:.0f} ms", f"{r['session_s'] * 1e3:.0f} ms",
             f"{r['first_run_s'] * 1e3:.0f} ms", f"{r['to_first_result_s']:.2f} s", f"{r['process_s']:.2f} s")
            for name, r in st.items() if isinstance(r, dict) and "process_s" in r]
    cache = st.get("cache_bytes") or {}
    note = ", ".join(f"{k} {fmt_bytes(v)}" for k, v in cache.items())
    lead = ("Each bar is a new Python process: cold uses empty POCL_CACHE_DIR and CLMACE_CACHE_DIR, warm reuses "
            "the directories the cold process filled" + (f" ({_e(note)})" if note else "") + ".")
    if (data.get("bench") or {}).get("device") == "cpu":
        lead += (" On the cpu device nothing is compiled, so cold and warm differ only by the operating system's "
                 "file cache; the effect of the compiled-program file shows with --device opencl.")
    return _section("startup", _img(charts.get("startup"), "start-up chart") +
                    _table(["process", "import", "session", "first run", "to first result", "whole process"],
                           rows, num=(1, 2, 3, 4, 5)), lead)


def latency(data: dict, charts: dict) -> str:
    """Steady-state latency distribution and throughput."""
    b = data.get("bench")
    if not b:
        return _section("latency", '<p class="muted">The benchmark step failed (see troubleshooting).</p>')
    s = b["steady"]
    rows = [(e, f"{s[e]['median_ms']:.2f}", f"{s[e]['p90_ms']:.2f}", f"{s[e]['p99_ms']:.2f}", f"{s[e]['min_ms']:.2f}",
             f"{s[e]['throughput_per_s']:.1f}") for e in ("clmace", "onnxruntime") if s.get(e)]
    peak = s.get("peak_device_memory_bytes")
    none = "not applicable: the cpu device works in host memory" if b["device"] == "cpu" else \
        "not reported by this runtime"
    mem = [("peak device memory", fmt_bytes(peak) if peak else none)]
    parts = s.get("memory") or {}
    if parts:
        mem.append(("device memory parts", ", ".join(f"{_e(k.replace('_', ' '))} {fmt_bytes(v)}"
                                                     for k, v in parts.items() if k != "peak")))
    if s.get("programs") is not None:
        mem.append(("OpenCL programs / plan set-up", f"{s['programs']} programs, set-up "
                                                     f"{s.get('setup_seconds', 0):.2f} s in the benchmark process"))
    mem.append(("peak host RSS (whole process)", fmt_bytes(s.get("peak_host_rss_bytes"))))
    lead = (f"{b['runs']} timed runs after {b['warmup']} warm-ups, batch as the model declares; clmace and "
            "onnxruntime runs alternate so background noise hits both.")
    return _section("latency", _img(charts.get("latency"), "latency histogram") +
                    _table(["engine", "median ms", "p90 ms", "p99 ms", "min ms", "inferences/s"], rows,
                           num=(1, 2, 3, 4, 5)) + _kv(mem), lead)


def per_op(data: dict, charts: dict) -> str:
    """Where the time goes, per node and per op type."""
    s = ((data.get("bench") or {}).get("steady")) or {}
    prof = s.get("profile")
    if not prof:
        table = s.get("profile_table")
        body = f"<pre>{_e(table)}</pre>" if table else '<p class="muted">No per-op profile is available.</p>'
        return _section("per-op", body)
    rows = [(f"<code>{_e(r['node'])}</code>", _e(r["op"]), f"{r['ms']:.3f}", f"{r['share']:.1%}")
            for r in prof["top_nodes"]]
    ops = [(f"<code>{_e(r['op'])}</code>", f"{r['ms']:.3f}", f"{r['share']:.1%}") for r in prof["by_op"]]
    lead = f"Source: {_e(s['profile_source'])}; total {prof['total_ms']:.2f} ms per run."
    tables = (f"<details><summary>the {len(rows)} slowest nodes</summary>"
              + _table(["node", "op", "ms", "share"], rows, num=(2, 3)) + "</details><details><summary>time per op "
              "type</summary>" + _table(["op", "ms", "share"], ops, num=(1, 2)) + "</details>")
    return _section("per-op", _img(charts.get("ops"), "per-op chart") + tables, lead)


def _cos(c: object) -> str:
    return f"{c:.8f}" if isinstance(c, float) else _e(c)


def accuracy(data: dict, charts: dict) -> str:
    """Per-output metrics against onnxruntime, and the per-layer comparison."""
    v = data.get("validation")
    if not v:
        return _section("accuracy", '<p class="muted">Validation did not run (see troubleshooting).</p>')
    rows = [(f"<code>{_e(m['name'])}</code>", _e(m["shape"]), _cos(m["cosine"]), fmt_num(m["sqnr_db"], 5),
             fmt_num(m["max_abs"], 3), fmt_num(m["max_rel"], 3), "–" if m["top1"] is None else f"{m['top1']:.0%}",
             f'<span class="badge {"pass" if m["passed"] else "fail"}">{"PASS" if m["passed"] else "FAIL"}</span>')
            for m in v["outputs"]]
    ins = ", ".join(f"{k} {x['shape']}" for k, x in v["inputs"].items())
    lead = (f"clmace on {_e(v['device'])} ({_e(v['precision'])}) vs onnxruntime with graph optimisations off, on "
            f"the same random inputs in [-1, 1] ({_e(ins)}). Cosine similarity decides: threshold {v['threshold']}.")
    body = _table(["output", "shape", "cosine", "SQNR dB", "max abs", "max rel", "top-1", "result"], rows,
                  num=(2, 3, 4, 5, 6))
    layers = v.get("layers")
    if layers is not None:
        bad = sum(not r["passed"] for r in layers)
        first = v.get("first_divergent")
        body += (f"<h3>per-layer comparison</h3><p>{len(layers)} intermediate tensors of the ONNX graph survive "
                 f"clmace's passes and were compared; {bad} fall below the threshold."
                 + (f" First divergent layer: <code>{_e(first)}</code>." if first else "") + "</p>")
        body += _img(charts.get("layers"), "per-layer cosine distance")
    return _section("accuracy", body, lead)


def _issue_detail(text: str, keep: int = 4) -> str:
    """The detail text; long logs show their first lines and the end (where hints live), the rest folded."""
    lines = text.splitlines()
    if len(lines) <= keep + 4:
        return f'<div class="detail">{_e(text)}</div>'
    hint = [ln for ln in lines if ln.startswith("What to do:")]
    body = [ln for ln in lines if not ln.startswith("What to do:")]
    shown = "\n".join(body[:keep] + hint)
    return (f'<div class="detail">{_e(shown)}</div><details><summary>full log ({len(body)} lines)</summary>'
            f'<pre>{_e(chr(10).join(body))}</pre></details>')


def troubleshooting(data: dict) -> str:
    """Problems found while producing this report, worst first."""
    items = "".join(f'<div class="issue {i["level"]}"><div class="title"><span class="badge {i["level"]}">'
                    f'{_e(i["level"])}</span> {_e(i["title"])}</div>{_issue_detail(i["detail"])}</div>'
                    for i in data.get("troubleshooting", []))
    return _section("troubleshooting", items)


def render_html(data: dict, charts: dict[str, bytes] | None = None) -> str:
    """The whole page."""
    charts = all_charts(data) if charts is None else charts
    o = data["overview"]
    nav = "".join(f'<a href="#{k}">{_e(t)}</a>' for k, t in SECTIONS)
    body = "".join([overview(data), device(data), model(data), program_file(data), steps(data), startup(data, charts),
                    latency(data, charts), per_op(data, charts), accuracy(data, charts), troubleshooting(data)])
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
            f'content="width=device-width, initial-scale=1"><title>clmace report: {_e(o["model"])} on '
            f'{_e(o["device"])}</title><style>{CSS}</style></head><body><header><div class="wrap">'
            f'<h1>clmace report — {_e(o["model"])} on {_e(o["device"])}</h1><p>{_e(o["date"])} · clmace '
            f'{_e(o["version"])} · {_e(o["precision"])}</p><nav>{nav}</nav></div></header><main>{body}</main>'
            f'<footer>Generated by <code>clmace report</code>. Self-contained: no external resources.</footer>'
            f'</body></html>')
