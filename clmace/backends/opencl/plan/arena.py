"""Static memory planning: lifetimes of tensors and the shared buffers (slots) that hold them."""

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


def align(n: int, alignment: int) -> int:
    """n rounded up to a multiple of alignment."""
    return (n + alignment - 1) // alignment * alignment


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


def plan_slots(blocks: list[Block], alignment: int) -> list[int]:
    """Share whole buffers between tensors whose lifetimes do not overlap; return each slot's size.

    Sets block.offset to the block's slot index. Tensors never get overlapping sub-buffers of one
    allocation: NVIDIA's driver crashes when such sub-buffers are released (seen on the
    H200, driver 580), so devices that need it get one buffer per slot instead.
    """
    sizes: list[int] = []
    busy_until: list[int] = []
    for block in sorted(blocks, key=lambda b: (b.first, -b.size, b.name)):
        need = align(block.size + SLACK, alignment)
        free = [i for i, last in enumerate(busy_until) if last < block.first]
        fits = [i for i in free if sizes[i] >= need]
        if fits:
            slot = min(fits, key=lambda i: sizes[i])
        elif free:
            slot = max(free, key=lambda i: sizes[i])  # grow the largest free slot rather than add one
            sizes[slot] = need
        else:
            slot = len(sizes)
            sizes.append(need)
            busy_until.append(-1)
        busy_until[slot] = block.last
        block.offset = slot
    return sizes
