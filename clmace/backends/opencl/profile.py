"""The per-node timing table printed by `clmace run --profile`."""

from __future__ import annotations

from collections.abc import Sequence


def format_profile(rows: Sequence[tuple[str, str, str, float]], wall_seconds: float, device: str,
                   top: int = 15) -> str:
    """Table of the `top` slowest nodes (launches of one node summed) with share of the kernel total."""
    per_node: dict[str, list] = {}
    for name, op, where, seconds in rows:
        entry = per_node.setdefault(name, [op, where, 0.0, 0])
        entry[2] += seconds
        entry[3] += 1
    total = sum(e[2] for e in per_node.values()) or 1e-12
    ranked = sorted(per_node.items(), key=lambda kv: -kv[1][2])
    width = max([len(n) for n, _ in ranked[:top]] + [4])
    op_width = max([len(e[0]) + (len(f" x{e[3]}") if e[3] > 1 else 0) for _, e in ranked[:top]] + [11])
    lines = [f"profile on {device}: end-to-end {wall_seconds * 1e3:.3f} ms, device time {total * 1e3:.3f} ms "
             f"in {len(rows)} steps ({len(per_node)} nodes)",
             f"{'#':>3}  {'node':<{width}}  {'op [kernel]':<{op_width}} {'where':<6} {'ms':>9} {'share':>7} {'cum':>7}"]
    cumulative = 0.0
    for rank, (name, (op, where, seconds, launches)) in enumerate(ranked[:top], 1):
        cumulative += seconds
        op_text = op if launches == 1 else f"{op} x{launches}"
        lines.append(f"{rank:>3}  {name:<{width}}  {op_text:<{op_width}} {where:<6} {seconds * 1e3:>9.3f} "
                     f"{seconds / total:>6.1%} {cumulative / total:>6.1%}")
    if len(ranked) > top:
        rest = sum(e[2] for _, e in ranked[top:])
        lines.append(f"     ({len(ranked) - top} more nodes: {rest * 1e3:.3f} ms, {rest / total:.1%})")
    by_kernel: dict[str, float] = {}
    for _, op, where, seconds in rows:
        kernel = op.rsplit("[", 1)[-1].rstrip("]") if "[" in op else f"{op} ({where})"
        by_kernel[kernel] = by_kernel.get(kernel, 0.0) + seconds
    summary = ", ".join(f"{k} {s * 1e3:.2f} ms ({s / total:.0%})"
                        for k, s in sorted(by_kernel.items(), key=lambda kv: -kv[1])[:6])
    lines.append(f"by kernel: {summary}")
    return "\n".join(lines)
