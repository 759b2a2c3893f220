"""The package as a user meets it: what importing it costs and pulls in, and what it exports."""

import pathlib
import re
import subprocess
import sys

import npflows

PACKAGE = pathlib.Path(npflows.__file__).parent


def test_import_needs_only_numpy_and_scipy():
    code = (
        "import sys, npflows; "
        "print(sorted(m for m in ('matplotlib', 'tqdm', 'torch', 'jax', 'autograd', 'IPython') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_no_automatic_differentiation_or_pickle_in_the_library():
    pattern = re.compile(r"^\s*(import|from)\s+(torch|jax|autograd|tensorflow|pickle)\b", re.M)
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        assert not pattern.search(text), path
        assert "allow_pickle=True" not in text, path


def test_every_public_name_resolves():
    for name in npflows.__all__:
        assert getattr(npflows, name) is not None, name
