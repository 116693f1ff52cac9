"""Argument parsing shared by the command-line modules (cli, cli_tune, cli_workflow)."""

from __future__ import annotations

from collections.abc import Sequence

from clmace.core.errors import ClmaceError


def shape_arg(items: Sequence[str] | None) -> dict[str, tuple[int, ...]]:
    """{name: shape} from --input-shape NAME=D0,D1,... items."""
    shapes = {}
    for item in items or []:
        name, _, dims = item.rpartition("=")
        if not name:
            raise ClmaceError(f"--input-shape {item!r}: expected NAME=D0,D1,...")
        try:
            shapes[name] = tuple(int(d) for d in dims.split(","))
        except ValueError:
            raise ClmaceError(f"--input-shape {item!r}: dimensions must be integers, e.g. {name}=1,3,224,224") from None
    return shapes
