"""The package's import rule: no npflows module imports another npflows module's private names.

A name with a leading underscore is private to the module that defines it. A module may import
public names from a private module (``from ._loop import Guard``: ``_loop`` is internal to the
package, its names are its interface to the trainers), but never ``_names`` from anywhere else in
npflows (``from .train import _Progress``). Attribute access (``layer._forward_vjp``, the layer
contract's methods) is not an import and is not checked here.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "npflows"


def private_imports(source: str, module: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            inside = node.level > 0 or (node.module or "").split(".")[0] == "npflows"
            found += [
                f"{module}:{node.lineno} imports {alias.name} from {'.' * node.level}{node.module or ''}"
                for alias in node.names
                if inside and alias.name.startswith("_") and alias.name != "__version__"
            ]
    return found


def test_no_module_imports_a_private_name_of_another():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        found += private_imports(path.read_text(encoding="utf-8"), str(path.relative_to(PACKAGE)))
    assert found == []


def test_the_check_sees_relative_and_absolute_imports():
    source = "from .train import _Progress\nfrom npflows.tree import _collect, leaves\nfrom ._loop import Guard\n"
    assert private_imports(source, "m.py") == [
        "m.py:1 imports _Progress from .train",
        "m.py:2 imports _collect from npflows.tree",
    ]
