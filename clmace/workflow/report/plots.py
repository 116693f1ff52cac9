"""Report charts drawn with matplotlib's Agg backend, returned as PNG bytes (no display, no network)."""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # headless: must be chosen before pyplot is imported

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

BLUE, ORANGE, GREY, GREEN, RED = "#2563eb", "#f59e0b", "#94a3b8", "#16a34a", "#dc2626"
PHASES = (("import_s", "import", "#93c5fd"), ("session_s", "session creation", BLUE),
          ("first_run_s", "first run", "#1e3a8a"))


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=130, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _style(ax) -> None:
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="x", color="#e2e8f0", linewidth=0.8)
    ax.set_axisbelow(True)


STARTUP_LABELS = {"cold": "clmace, cold\n(no compiled-program file)", "warm": "clmace, warm\n(file and caches reused)",
                  "onnxruntime": "onnxruntime\n(baseline)"}


def startup_chart(startup: dict) -> bytes:
    """Stacked bars: import, session creation and first run of each fresh process, total at the end."""
    steps = [s for s in ("cold", "warm", "onnxruntime") if s in startup]
    fig, ax = plt.subplots(figsize=(8.5, 0.9 + 0.75 * len(steps)))
    y = np.arange(len(steps))[::-1]
    left = np.zeros(len(steps))
    for key, label, color in PHASES:
        values = np.array([startup[s][key] for s in steps])
        ax.barh(y, values, left=left, color=color, label=label, height=0.55)
        left += values
    for yi, s, total in zip(y, steps, left):
        wall = startup[s].get("process_s")
        text = f"{total:.2f} s" + (f"  (process {wall:.2f} s)" if wall else "")
        ax.text(total, yi, "  " + text, va="center", fontsize=9)
    ax.set_yticks(y, [STARTUP_LABELS[s] for s in steps], fontsize=9)
    ax.set_xlabel("seconds from interpreter start to first result")
    ax.set_xlim(0, max(left) * 1.45 or 1)
    ax.legend(loc="lower right", fontsize=8, frameon=False, ncols=3)
    _style(ax)
    return _png(fig)


def _hist(ax, samples: Sequence[float], color: str, title: str) -> None:
    data = np.asarray(samples)
    ax.hist(data, bins=min(30, max(5, len(data) // 2)), color=color, alpha=0.85, edgecolor="white")
    for q, style in ((50, "-"), (90, "--"), (99, ":")):
        v = float(np.percentile(data, q))
        ax.axvline(v, color="#0f172a", linestyle=style, linewidth=1, label=f"p{q} {v:.2f} ms")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("runs")
    ax.legend(fontsize=8, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)


def latency_histogram(steady: dict) -> bytes:
    """One latency histogram per engine (own x scales: engines can differ by orders of magnitude)."""
    engines = [e for e in ("clmace", "onnxruntime") if steady.get(e)]
    fig, axes = plt.subplots(1, len(engines), figsize=(5 * len(engines), 3.2), squeeze=False)
    for ax, engine in zip(axes[0], engines):
        _hist(ax, steady[engine]["samples_ms"], BLUE if engine == "clmace" else ORANGE, engine)
    fig.tight_layout()
    return _png(fig)


def _short(name: str, width: int = 46) -> str:
    return name if len(name) <= width else "…" + name[-(width - 1):]


def op_chart(profile: dict, top: int = 12) -> bytes:
    """Left: slowest nodes; right: share of time per op type."""
    nodes = profile["top_nodes"][:top]
    by_op = profile["by_op"][:8]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 0.6 + 0.32 * max(len(nodes), len(by_op))),
                                 gridspec_kw={"width_ratios": [1.7, 1]})
    y = np.arange(len(nodes))[::-1]
    a1.barh(y, [r["ms"] for r in nodes], color=BLUE, height=0.65)
    a1.set_yticks(y, [f"{_short(r['node'])}  [{r['op']}]" for r in nodes], fontsize=7.5)
    for yi, r in zip(y, nodes):
        a1.text(r["ms"], yi, f" {r['share']:.0%}", va="center", fontsize=7.5)
    a1.set_xlabel("ms per run")
    a1.set_title(f"slowest {len(nodes)} nodes", fontsize=10)
    y2 = np.arange(len(by_op))[::-1]
    a2.barh(y2, [100 * r["share"] for r in by_op], color=ORANGE, height=0.65)
    a2.set_yticks(y2, [r["op"] for r in by_op], fontsize=8)
    a2.set_xlabel("% of total node time")
    a2.set_title("time by op type", fontsize=10)
    for ax in (a1, a2):
        _style(ax)
    fig.tight_layout()
    return _png(fig)


def layer_chart(layers: Sequence[dict], threshold: float, first: str | None) -> bytes:
    """Per-layer cosine distance (1 - cosine, log scale) in topological order, with the threshold."""
    dist = np.array([max(1.0 - float(r["cosine"]), 1e-12) if isinstance(r["cosine"], float) and
                     np.isfinite(r["cosine"]) else 1.0 for r in layers])
    fig, ax = plt.subplots(figsize=(10, 2.6))
    x = np.arange(len(layers))
    colors = [GREEN if r["passed"] else RED for r in layers]
    ax.scatter(x, dist, c=colors, s=14, zorder=3)
    ax.plot(x, dist, color=GREY, linewidth=0.8, zorder=2)
    ax.axhline(1.0 - threshold, color=RED, linestyle="--", linewidth=1, label=f"threshold (cosine {threshold})")
    if first is not None:
        i = next(i for i, r in enumerate(layers) if r["name"] == first)
        ax.annotate(f"first divergent: {_short(first, 40)}", (i, dist[i]), textcoords="offset points",
                    xytext=(8, 8), fontsize=8, color=RED)
    ax.set_yscale("log")
    ax.set_ylim(min(1e-10, float(dist.min()) / 2), 2)
    ax.set_xlabel("layer (ONNX topological order)")
    ax.set_ylabel("1 - cosine")
    ax.legend(fontsize=8, frameon=False, loc="upper left")
    ax.spines[["top", "right"]].set_visible(False)
    return _png(fig)


def all_charts(data: dict) -> dict[str, bytes]:
    """Every chart the report data supports, keyed startup / latency / ops / layers."""
    charts: dict[str, bytes] = {}
    bench = data.get("bench") or {}
    if bench.get("startup"):
        charts["startup"] = startup_chart(bench["startup"])
    steady = bench.get("steady") or {}
    if steady.get("clmace"):
        charts["latency"] = latency_histogram(steady)
    if steady.get("profile"):
        charts["ops"] = op_chart(steady["profile"])
    v = data.get("validation") or {}
    if v.get("layers"):
        charts["layers"] = layer_chart(v["layers"], v["threshold"], v.get("first_divergent"))
    return charts
