"""``python -m npflows``: see :mod:`npflows.cli`."""

from .cli import main

raise SystemExit(main())
