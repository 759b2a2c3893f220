"""Writes the format-version-1 model files that tests/test_io.py loads, with the npflows of commit
f3d2405 (before the io package), so that files saved by that version are checked to still load.

Run from a checkout of that commit: ``PYTHONPATH=. python tests/data/make_io_v1_models.py``.
"""

from pathlib import Path

import numpy as np

import npflows as nf

HERE = Path(__file__).parent
x = np.random.default_rng(7).normal(size=(20, 2))
models = {
    "io_v1_realnvp.npz": nf.flows.RealNVP(2, n_layers=3, hidden=(8,), mixing="lu", rng=1),
    "io_v1_nsf_float32.npz": nf.flows.NSF(2, n_layers=2, hidden=(8,), rng=2).astype(np.float32),
}
expected = {"x": x}
for name, flow in models.items():
    for leaf in nf.tree.leaves(flow.params):
        leaf += 0.1 * np.random.default_rng(3).standard_normal(leaf.shape).astype(leaf.dtype)
    nf.save(flow, HERE / name)
    expected[name] = flow.log_prob(x.astype(flow.dtype))
np.savez(HERE / "io_v1_expected.npz", **{k.replace(".", "_"): v for k, v in expected.items()})
