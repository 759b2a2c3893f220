"""A Sphinx extension that resolves a cross-reference through the name users import.

npflows documents every object once, in the module that defines it (``npflows.train.fit``), but
docstrings name objects the way users import them (``npflows.fit``, ``npflows.layers.MAF``) or as
imported into the module at hand (``Flow`` inside ``npflows.flows``), or by their bare name as
exported by the package (``Squeeze`` for ``npflows.Squeeze``). When Sphinx finds no target for
such a reference, this hook imports the name, reads where the object is defined
(``__module__``.``__qualname__``) and resolves the reference there. A name that imports nothing, or
whose object is not documented, stays unresolved, so a broken reference still fails the build.
"""

from __future__ import annotations

import importlib


def _import(dotted: str):
    """The object a dotted name refers to, importing its longest module prefix; None if none."""
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        try:
            for attr in parts[split:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


def _defined_at(target: str, module: str | None) -> str | None:
    """Where the object that ``target`` names (from inside ``module``) is defined, if it names one."""
    # Inside the module, as imported there; as written; as users import it from the package.
    for dotted in ([f"{module}.{target}"] if module else []) + [target, f"npflows.{target}"]:
        obj = _import(dotted)
        name = getattr(obj, "__qualname__", None)
        home = getattr(obj, "__module__", None)
        if obj is not None and isinstance(name, str) and isinstance(home, str):
            return f"{home}.{name}"
    return None


def _resolve(app, env, node, contnode):
    if node.get("refdomain") != "py" or not node.get("reftarget", "").strip():
        return None
    target = node["reftarget"].lstrip("~.")
    defined = _defined_at(target, node.get("py:module"))
    if defined is None or defined == target:
        return None
    py = env.get_domain("py")
    return py.resolve_xref(
        env, node["refdoc"], app.builder, node["reftype"], defined, node, contnode
    )


def setup(app):
    app.connect("missing-reference", _resolve)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
