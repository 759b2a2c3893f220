"""Saving and loading flows: one ``.npz`` of parameter arrays and a JSON description, no pickle.

File layout (format version 1; the full description is docs/files.md): every parameter array is an
uncompressed ``.npy`` member under its tree path (``layers/0/theta.npy``) in its own dtype (float32
or float64, per array), plus one member ``__npflows__.npy``, a uint8 array holding UTF-8 JSON:

    {"format": "npflows", "version": 1,
     "model": {"class": name, "args": {...}},            # npflows.layer.describe(model)
     "arrays": {path: {"shape": [...], "dtype": "<f8"}, ...},
     "sha256": hex digest}

The SHA-256 digest covers the JSON fields other than "sha256" (serialized with sorted keys), then
each array in sorted path order as its JSON header ``[path, shape, dtype]`` followed by its raw
bytes, so editing either the description or an array without re-signing is detected.

Loading builds only classes on an allowlist: npflows' own concrete layers, transformers and base
densities, and the classes registered with :func:`register`.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import numpy as np

from ..layer import Layer, describe
from ..tree import leaves_with_paths
from .archive import Archive, write_atomically
from .classes import allowed_classes, build, check_saveable, register
from .format import (
    DEFAULT_MAX_BYTES,
    FORMAT,
    MAX_DEPTH,
    META,
    VERSION,
    ModelFileError,
    check_max_bytes,
    check_path,
    digest,
)
from .sizes import check_buildable_size

__all__ = ["DEFAULT_MAX_BYTES", "ModelFileError", "load", "register", "save"]

PARAM_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def save(model: Any, path: str | os.PathLike) -> None:
    """Write ``model`` (a Flow or any layer) to ``path`` as an npflows ``.npz`` file.

    The file is written to exactly ``path`` (no ``.npz`` suffix is appended), atomically: the data
    goes to a temporary file in the same directory that then replaces the target (``os.replace``),
    so a crash never leaves half a file. A symlink is written through (the link stays); an existing
    file keeps its permission bits. Each parameter keeps its dtype (float32 or float64).

    Everything :func:`load` checks is checked first, so ``save`` never writes a file that ``load``
    refuses: the model is rebuilt from its description and compared. (A file larger than
    ``load``'s size limit, 1 GiB by default, is loaded with ``load(path, max_bytes=...)``.)

    Raises:
        TypeError: ``model`` is not an npflows layer, or ``path`` is not a str or path.
        ValueError: a parameter is NaN, inf or not float32/float64; the description is not JSON;
            the model contains a class that is not registered (the message says how to register
            it, see :func:`register`); or its ``get_config`` does not rebuild it.
    """
    path = check_path(path)
    if not isinstance(model, Layer):
        raise TypeError(f"model must be an npflows Layer or Flow, got {type(model).__name__}")
    arrays = {}
    for name, leaf in leaves_with_paths(model.params):
        if name == META:
            raise ValueError(f"the parameter name {META!r} is reserved for the file's metadata")
        if leaf.dtype not in PARAM_DTYPES:
            raise ValueError(
                f"refusing to save: parameter {name!r} has dtype {leaf.dtype}, not "
                "float32 or float64"
            )
        if not np.isfinite(leaf).all():
            raise ValueError(f"refusing to save: parameter {name!r} has NaN or inf values")
        arrays[name] = np.ascontiguousarray(leaf)
    allowed = allowed_classes()
    try:
        description = describe(model)
    except NotImplementedError as error:
        raise ValueError(
            f"cannot save: a layer in {type(model).__name__} has no get_config(); give it one that "
            f"returns the constructor's arguments (see docs/files.md, 'Custom classes')"
        ) from error
    check_saveable(model, description, allowed)
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "model": description,
        "arrays": {
            name: {"shape": list(a.shape), "dtype": a.dtype.str} for name, a in arrays.items()
        },
    }
    try:
        meta["sha256"] = digest(meta, arrays)
        text = json.dumps(meta, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"cannot save {type(model).__name__}: its description is not JSON: {error}"
        ) from error
    _check_rebuilds(model, text, arrays, allowed)
    write_atomically(path, {**arrays, META: np.frombuffer(text, dtype=np.uint8)})


def _check_rebuilds(model: Layer, text: bytes, arrays: dict, allowed: dict[str, type]) -> None:
    """Raise ValueError unless ``load`` would rebuild ``model`` from the JSON ``text``: same class,
    same parameter names and shapes, within the size rules of :mod:`npflows.io.sizes`."""
    where = f"refusing to save {type(model).__name__}"
    try:
        meta = _parse_meta(where, text)
        n_scalars = sum(a.size for a in arrays.values())
        check_buildable_size(where, meta["model"], allowed, n_scalars, len(text))
        rebuilt = build(where, meta["model"], allowed)
    except ModelFileError as error:
        raise ValueError(f"{error} (load could not read such a file)") from error
    if type(rebuilt) is not type(model):
        raise ValueError(f"{where}: its description rebuilds a {type(rebuilt).__name__}")
    shapes = {name: leaf.shape for name, leaf in leaves_with_paths(rebuilt.params)}
    for name in sorted(shapes.keys() | arrays.keys()):
        if shapes.get(name) != (arrays[name].shape if name in arrays else None):
            raise ValueError(
                f"{where}: rebuilt from its get_config(), parameter {name!r} has shape "
                f"{shapes.get(name)} instead of {arrays[name].shape if name in arrays else None}; "
                f"get_config() must return the arguments that rebuild the same layer"
            )


def load(path: str | os.PathLike, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Any:
    """Read a model written by :func:`save` and return it, parameters and dtypes restored bit for bit.

    Args:
        path: the file.
        max_bytes: the largest file accepted, 1 GiB by default. Arrays are stored uncompressed, so
            this bounds the memory a file can make ``load`` allocate (about twice the file size:
            the arrays read, and the model they are copied into). Raise it for a larger model.

    Every check runs before the model is returned, and every size is checked before anything of
    that size is allocated. Any refusal raises :class:`ModelFileError` (a ValueError) saying what
    was wrong: not a regular file (a FIFO, directory or device is refused without being read), too
    large for ``max_bytes``, not an uncompressed ``.npz`` of ``.npy`` members (a foreign, truncated
    or compressed file), an ``.npy`` header that does not match its member's size, no
    ``__npflows__`` metadata, bad JSON (non-finite numbers, too deep), another format, a newer
    format version, a checksum mismatch, a class outside the allowlist (abstract bases are never on
    it), a description implying more parameters or larger sizes than the file holds, missing or
    extra arrays, a shape or dtype that does not match the rebuilt model, or NaN/inf values. A
    missing or unreadable path raises the usual OSError (FileNotFoundError, PermissionError).
    The list, with the reasons, is in docs/files.md.

    Raises:
        TypeError, ValueError: ``path`` is not a str or path, or ``max_bytes`` not a positive int.
    """
    path = check_path(path)
    max_bytes = check_max_bytes(max_bytes)
    with Archive(path, max_bytes) as archive:
        if META not in archive.headers:
            raise ModelFileError(
                f"{path}: no {META!r} entry; this .npz was not written by npflows.save"
            )
        shape, dtype = archive.headers[META]
        if dtype != np.uint8 or len(shape) != 1:
            raise ModelFileError(f"{path}: {META!r} must be a 1-D uint8 array, got {dtype} {shape}")
        text = archive.read(META).tobytes()
        meta = _parse_meta(path, text)
        declared = _declared_arrays(path, meta)
        stored = {name: header for name, header in archive.headers.items() if name != META}
        _check_same_arrays(path, declared, stored, "its metadata")
        allowed = allowed_classes()
        n_scalars = sum(math.prod(shape) for shape, _ in declared.values())
        check_buildable_size(path, meta["model"], allowed, n_scalars, len(text))
        arrays = {name: archive.read(name) for name in declared}
    if meta["sha256"] != digest(meta, arrays):
        raise ModelFileError(
            f"{path}: checksum mismatch; the file was changed after it was saved (tampered or corrupted)"
        )
    for name, array in arrays.items():
        if not np.isfinite(array).all():
            raise ModelFileError(f"{path}: array {name!r} has NaN or inf values")
    model = build(path, meta["model"], allowed)
    if not isinstance(model, Layer):
        raise ModelFileError(
            f"{path}: the model must be a layer or Flow, got {type(model).__name__}"
        )
    _restore(path, model, arrays)
    return model


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is outside the range of a float")
    return value


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number JSON allows")


def _parse_meta(where: str, text: bytes) -> dict:
    """The metadata dict, its format, version and field types checked."""
    try:
        meta = json.loads(
            text.decode("utf-8"), parse_float=_finite_float, parse_constant=_no_constant
        )
    except (ValueError, RecursionError) as error:  # UnicodeDecodeError is a ValueError
        raise ModelFileError(f"{where}: the metadata is not valid UTF-8 JSON: {error}") from error
    if _depth(meta) > MAX_DEPTH:
        raise ModelFileError(f"{where}: the metadata is nested more than {MAX_DEPTH} levels deep")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        got = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise ModelFileError(f"{where}: expected format {FORMAT!r}, got {got!r}")
    version = meta.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ModelFileError(
            f"{where}: expected a positive integer format version, got {version!r}"
        )
    if version > VERSION:
        raise ModelFileError(
            f"{where}: written by a newer npflows (format version {version}; this npflows reads up "
            f"to {VERSION}); upgrade npflows to load it"
        )
    if not isinstance(meta.get("model"), dict) or not isinstance(meta.get("sha256"), str):
        raise ModelFileError(
            f"{where}: metadata must have 'model' (a dict) and 'sha256' (a string)"
        )
    if not isinstance(meta.get("arrays"), dict):
        raise ModelFileError(f"{where}: metadata must have 'arrays' (path -> shape and dtype)")
    return meta


def _depth(value: Any) -> int:
    """Nesting depth of a JSON value, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth <= MAX_DEPTH and isinstance(item, (dict, list)):
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return deepest


def _declared_arrays(path: str, meta: dict) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """The arrays the metadata declares, as {path: (shape, dtype)}, each a float32/float64 array."""
    declared = {}
    for name, entry in meta["arrays"].items():
        try:
            shape, dtype = entry["shape"], np.dtype(entry["dtype"])
            if not isinstance(shape, list) or not all(
                isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape
            ):
                raise ValueError(f"shape must be a list of non-negative integers, got {shape!r}")
        except Exception as error:  # entry may be anything JSON can hold
            raise ModelFileError(
                f"{path}: metadata 'arrays' must map each path to {{'shape': [...], 'dtype': str}}; "
                f"{name!r}: {type(error).__name__}: {error}"
            ) from error
        if dtype.kind != "f" or dtype.itemsize not in (4, 8):
            raise ModelFileError(f"{path}: array {name!r} has dtype {dtype}, not float32/float64")
        declared[name] = (tuple(shape), dtype)
    return declared


def _check_same_arrays(path: str, expected: dict, found: dict, source: str) -> None:
    """Raise unless ``found`` has exactly the names, shapes and dtypes ``expected`` by ``source``;
    both map names to (shape, dtype)."""
    missing, extra = expected.keys() - found.keys(), found.keys() - expected.keys()
    if missing or extra:
        raise ModelFileError(
            f"{path}: arrays do not match {source}: missing {sorted(missing)}, unexpected {sorted(extra)}"
        )
    for name, (shape, dtype) in expected.items():
        if tuple(found[name][0]) != tuple(shape) or found[name][1] != dtype:
            raise ModelFileError(
                f"{path}: {source} expects {name!r} with shape {tuple(shape)} and dtype {dtype}, "
                f"the file has shape {tuple(found[name][0])} and dtype {found[name][1]}"
            )


def _restore(path: str, model: Layer, arrays: dict[str, np.ndarray]) -> None:
    """Copy the file's arrays into the rebuilt model, each leaf taking its array's dtype (a leaf
    of another dtype is replaced inside its own container, as ``Layer.astype`` does)."""
    live = dict(leaves_with_paths(model.params))
    missing, extra = live.keys() - arrays.keys(), arrays.keys() - live.keys()
    if missing or extra:
        raise ModelFileError(
            f"{path}: arrays do not match the model: missing {sorted(missing)}, unexpected {sorted(extra)}"
        )
    for name, leaf in live.items():
        if leaf.shape != arrays[name].shape:
            raise ModelFileError(
                f"{path}: the model expects {name!r} with shape {leaf.shape}, the file has shape "
                f"{arrays[name].shape}"
            )
    for container, key, name in _slots(model.params):
        if container[key].dtype == arrays[name].dtype:
            container[key][...] = arrays[name]
        else:
            container[key] = np.array(arrays[name])
    for name, leaf in leaves_with_paths(model.params):
        if leaf.dtype != arrays[name].dtype:
            raise ModelFileError(
                f"{path}: {type(model).__name__} does not keep {name!r} in its own params, so its "
                f"dtype {arrays[name].dtype} cannot be restored"
            )


def _slots(tree: Any, prefix: str = ""):
    """``(container, key, path)`` for every array leaf of a parameter tree."""
    items = tree.items() if isinstance(tree, dict) else enumerate(tree)
    for key, sub in list(items):
        if isinstance(sub, np.ndarray):
            yield tree, key, f"{prefix}{key}"
        else:
            yield from _slots(sub, f"{prefix}{key}/")
