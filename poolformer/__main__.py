"""Lets `python -m poolformer ...` run the command line in poolformer/cli.py."""

from poolformer.cli import main

raise SystemExit(main())
