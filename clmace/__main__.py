"""python -m clmace: the command-line interface."""

from clmace.cli.main import main

raise SystemExit(main())
