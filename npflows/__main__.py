"""``python -m npflows``: see :mod:`npflows.cli`."""

from .cli import main

if __name__ == "__main__":  # not when imported, e.g. by the API reference's module scan
    raise SystemExit(main())
