"""Independent float64 scoring of models trained in zuko or nflows, from their parameter arrays.

``from_zuko(name, arrays, **kwargs)`` and ``from_nflows(name, arrays, **kwargs)`` return an npflows
:class:`~npflows.Flow` that computes what the peer's model computes: ``log_prob`` is the peer's
``log_prob`` and ``forward`` the peer's sampling map on the same base draws. Only numpy is used;
torch is never imported. docs/interop.md: the classes and options covered, the peers' formulas, and
the measured agreement.
"""

from .nflows import from_nflows
from .zuko import from_zuko

__all__ = ["from_nflows", "from_zuko"]
