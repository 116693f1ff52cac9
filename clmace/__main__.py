"""python -m clmace: the command-line interface."""

from clmace.cli import main

raise SystemExit(main())
