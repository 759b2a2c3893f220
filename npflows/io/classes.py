"""Which classes a model file may name, and building a model from its description.

The allowlist: the concrete layers, transformers and base densities that npflows exports (from the
``__all__`` of ``npflows``, ``npflows.layers``, ``npflows.transformers`` and
``npflows.distributions``), plus the classes registered with :func:`register`. Abstract bases
(``Layer``, ``Transformer``, a class whose required methods are not implemented) are never on it.
A file names classes; it never holds code (no pickle). See docs/files.md, "Custom classes".
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Iterator
from typing import Any

from ..layer import Layer
from ..transformers.base import Transformer
from .format import ModelFileError

_registered: dict[str, type] = {}
_lock = threading.Lock()


def register(cls: type) -> type:
    """Allow :func:`npflows.load` to build ``cls`` (and :func:`npflows.save` to write it); returns
    ``cls``, so it also works as a class decorator::

        @npflows.io.register
        class Shift(npflows.Layer): ...

    ``cls`` must be a concrete class (a :class:`npflows.Layer` or transformer subclass, or a base
    density) whose ``get_config()`` gives the JSON constructor arguments that rebuild it. Files
    name it by ``cls.__name__``, which must not already name another class. Registration lasts for
    the process: register in the module that defines the class, and import that module before
    loading. Registering the same class again (or a new version of it from the same module, as
    when a notebook cell is re-run) is allowed.

    Raises:
        TypeError: ``cls`` is not a class, or has no ``get_config``.
        ValueError: ``cls`` is abstract, private (its name starts with "_") or its name is taken.
    """
    if not isinstance(cls, type):
        raise TypeError(f"register expects a class, got {type(cls).__name__}")
    if not callable(getattr(cls, "get_config", None)):
        raise TypeError(f"{cls.__qualname__} has no get_config(); a loadable class needs one")
    if is_abstract(cls):
        raise ValueError(f"{cls.__qualname__} is abstract (required methods not implemented)")
    name = cls.__name__
    if name.startswith("_"):
        raise ValueError(f"{name} is private (its name starts with '_'); give it a public name")
    with _lock:
        library, old = library_classes().get(name), _registered.get(name)
        reloaded = old is not None and _qualified(old) == _qualified(cls)
        taken = library if library is not None else (None if reloaded else old)
        if taken is not None and taken is not cls:
            raise ValueError(
                f"the class name {name!r} already belongs to {_qualified(taken)}; files name classes "
                f"by their name, so rename {_qualified(cls)} before registering it"
            )
        _registered[name] = cls
    return cls


def is_abstract(cls: type) -> bool:
    """Whether ``cls`` lacks what building and running it needs: an ABC with abstract methods, the
    bases ``Layer`` and ``Transformer``, a layer without ``get_config`` or without a forward or
    inverse computation, a transformer without ``forward_vjp`` or a solve."""
    if inspect.isabstract(cls) or cls in (Layer, Transformer):
        return True
    if issubclass(cls, Layer):
        return (
            cls.get_config is Layer.get_config
            or (cls._forward is Layer._forward and cls._forward_vjp is Layer._forward_vjp)
            or (cls._inverse is Layer._inverse and cls._inverse_vjp is Layer._inverse_vjp)
        )
    if issubclass(cls, Transformer):
        return cls.forward_vjp is Transformer.forward_vjp or (
            cls._solve is Transformer._solve and cls._inverse_parts is Transformer._inverse_parts
        )
    return False


def library_classes() -> dict[str, type]:
    """The concrete classes npflows exports, by name."""
    import npflows
    from npflows import distributions, layers, transformers

    found: dict[str, type] = {"Flow": npflows.Flow}
    for module in (npflows, layers, transformers, distributions):
        for name in module.__all__:
            obj = getattr(module, name)
            if (
                isinstance(obj, type)
                and not name.startswith("_")
                and (issubclass(obj, (Layer, Transformer)) or module is distributions)
                and not is_abstract(obj)
            ):
                found[obj.__name__] = obj
    return found


def allowed_classes() -> dict[str, type]:
    """The library's classes and the registered ones, by name."""
    with _lock:
        return {**library_classes(), **_registered}


def class_names(description: Any) -> Iterator[str]:
    """Every class name in a description, through nested args and lists."""
    if isinstance(description, list):
        for item in description:
            yield from class_names(item)
    elif isinstance(description, dict) and "class" in description:
        yield description["class"]
        for arg in (description.get("args") or {}).values():
            yield from class_names(arg)


def check_saveable(model: Any, description: dict, allowed: dict[str, type]) -> None:
    """Raise ValueError unless every class ``description`` names is allowed and is the very class
    of the model's component with that name (a user's class named ``Linear`` is not npflows')."""
    names = set(class_names(description))
    components = list(_components(model))
    for obj in components:
        cls = type(obj)
        if cls.__name__ in names and allowed.get(cls.__name__) not in (None, cls):
            raise ValueError(
                f"cannot save: {_qualified(cls)} has the name of {_qualified(allowed[cls.__name__])}, "
                f"so a file could not tell them apart; rename it, then register it with "
                f"npflows.io.register"
            )
    for name in sorted(names - allowed.keys()):
        cls = next((type(o) for o in components if type(o).__name__ == name), None)
        shown = name if cls is None else _qualified(cls)
        raise ValueError(
            f"cannot save: {shown} is not a class npflows.load can build. Register it where it is "
            f"defined, with npflows.io.register({name}) or the decorator @npflows.io.register, and "
            f"import that module before loading (see docs/files.md, 'Custom classes')"
        )


def build(where: str, value: Any, allowed: dict[str, type]) -> Any:
    """Build a description ``{"class": name, "args": {...}}`` (its args first), recursively through
    lists; other values are returned as they are. Every failure is a :class:`ModelFileError`."""
    if isinstance(value, list):
        return [build(where, item, allowed) for item in value]
    if not (isinstance(value, dict) and "class" in value):
        return value
    cls, args = resolve(where, value, allowed)
    args = {key: build(where, arg, allowed) for key, arg in args.items()}
    try:
        return cls(**args)
    except Exception as error:  # a constructor given crafted args may fail in any way
        raise ModelFileError(
            f"{where}: cannot build {cls.__name__} from args {_short(args)}: "
            f"{type(error).__name__}: {error}"
        ) from error


def resolve(where: str, description: dict, allowed: dict[str, type]) -> tuple[type, dict]:
    """The class a description names and its args, or ModelFileError."""
    name, args = description.get("class"), description.get("args")
    if set(description) != {"class", "args"} or not isinstance(args, dict):
        raise ModelFileError(
            f"{where}: a description must be {{'class': name, 'args': {{...}}}}, got "
            f"{_short(description)}"
        )
    if not isinstance(name, str) or name not in allowed:
        raise ModelFileError(
            f"{where}: unknown class {name!r}; npflows builds only its own classes and registered "
            f"ones (npflows.io.register): {sorted(allowed)}"
        )
    return allowed[name], args


def _components(root: Any) -> Iterator[Any]:
    """The objects with a ``get_config`` reachable from ``root`` through attributes and lists."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, (list, tuple)):
            stack.extend(obj)
        elif isinstance(obj, dict):
            stack.extend(obj.values())
        elif not isinstance(obj, type) and callable(getattr(obj, "get_config", None)):
            yield obj
            stack.extend(getattr(obj, "__dict__", {}).values())


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _short(value: Any, limit: int = 300) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"
