"""The `clmace` command line: one module per command group; `main` is the entry point."""

from clmace.cli.main import main

__all__ = ["main"]
