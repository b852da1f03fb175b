"""``python -m core`` runs the ``loupe`` command line."""

from core.cli import main

raise SystemExit(main())
