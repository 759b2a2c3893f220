"""The README's Python examples run as written (in a temporary directory)."""

import os
import pathlib
import re

README = pathlib.Path(__file__).parents[1] / "README.md"


def test_the_tour_runs(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    tour = [b for b in blocks if "import npflows as nf" in b or "nf.Flow(" in b]
    assert len(tour) == 2
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in tour:
        exec(compile(block, str(README), "exec"), namespace)
    assert os.path.exists("moons.npz") and namespace["grads"]["layers"]
