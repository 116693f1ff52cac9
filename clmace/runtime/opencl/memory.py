"""Static memory planning: lifetimes of tensors and a greedy best-fit arena over them."""

from __future__ import annotations

from dataclasses import dataclass

# Every tensor gets this many spare bytes after its end (and the arena as much before its start), so
# kernels may load whole vectors that run past either end of a row and mask the extra lanes.
SLACK = 256


@dataclass
class Block:
    """One tensor's storage need: bytes and the [first, last] step during which it must stay intact."""

    name: str
    size: int
    first: int
    last: int
    offset: int = -1

    def overlaps(self, other: Block) -> bool:
        """True when the two lifetimes share a step."""
        return self.first <= other.last and other.first <= self.last


def align(n: int, alignment: int) -> int:
    """n rounded up to a multiple of alignment."""
    return (n + alignment - 1) // alignment * alignment


def plan_arena(blocks: list[Block], alignment: int) -> int:
    """Give every block an offset so blocks alive at the same time never overlap; return the arena size.

    Greedy by size (largest first), each placed in the smallest gap that fits among the already placed
    blocks whose lifetimes overlap its own, else after the highest of them.
    """
    placed: list[Block] = []
    end = 0
    for block in sorted(blocks, key=lambda b: (-b.size, b.first, b.name)):
        need = align(block.size + SLACK, alignment)
        live = sorted((p for p in placed if p.overlaps(block)), key=lambda p: p.offset)
        best, best_gap, cursor = -1, None, 0
        for p in live:
            gap = p.offset - cursor
            if gap >= need and (best_gap is None or gap < best_gap):
                best, best_gap = cursor, gap
            cursor = max(cursor, p.offset + align(p.size + SLACK, alignment))
        block.offset = best if best >= 0 else cursor
        end = max(end, block.offset + need)
        placed.append(block)
    return end


def live_peak(blocks: list[Block]) -> int:
    """The largest total size of blocks alive at one step: no arena can be smaller."""
    if not blocks:
        return 0
    events: dict[int, int] = {}
    for b in blocks:
        events[b.first] = events.get(b.first, 0) + b.size
        events[b.last + 1] = events.get(b.last + 1, 0) - b.size
    peak = running = 0
    for step in sorted(events):
        running += events[step]
        peak = max(peak, running)
    return peak
