"""Saving and loading flows: one ``.npz`` of parameter arrays and a JSON description, no pickle.

File layout (format version 1): every parameter array under its tree path (``layers/0/theta``),
plus one entry ``__npflows__``, a uint8 array holding UTF-8 JSON:

    {"format": "npflows", "version": 1,
     "model": {"class": name, "args": {...}},            # npflows.layer.describe(model)
     "arrays": {path: {"shape": [...], "dtype": "<f8"}, ...},
     "sha256": hex digest}

The SHA-256 digest covers the JSON fields other than "sha256" (serialized with sorted keys), then
each array in sorted path order as its JSON header ``[path, shape, dtype]`` followed by its raw
bytes, so editing either the description or an array without re-signing is detected.

Loading rebuilds the model from classes on an allowlist only: the classes exported by
``npflows.layers``, ``npflows.transformers`` and ``npflows.distributions``, and ``Flow``.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from typing import Any

import numpy as np

from .layer import describe
from .tree import leaves_with_paths

FORMAT = "npflows"
VERSION = 1
META = "__npflows__"


class ModelFileError(ValueError):
    """A file that :func:`load` refuses: not an npflows model, damaged, tampered or incompatible."""


def save(model: Any, path: str | os.PathLike) -> None:
    """Write ``model`` (a Flow or any layer) to ``path`` as an npflows ``.npz`` file.

    The file is written to exactly ``path``: unlike ``np.savez``, no ``.npz`` suffix is appended,
    so ``load(path)`` reads it back with the same name. Writing goes to a temporary file in the same
    directory that then replaces ``path`` (``os.replace``), so a crash never leaves half a file.

    Raises:
        ValueError: when a parameter is NaN or inf (such a file could not be loaded), or the
            model's description is not JSON.
    """
    path = os.fspath(path)
    arrays = {name: np.ascontiguousarray(leaf) for name, leaf in leaves_with_paths(model.params)}
    for name, array in arrays.items():
        if name == META:
            raise ValueError(f"the parameter name {META!r} is reserved for the file's metadata")
        if not np.isfinite(array).all():
            raise ValueError(f"refusing to save: parameter {name!r} has NaN or inf values")
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "model": describe(model),
        "arrays": {
            name: {"shape": list(a.shape), "dtype": a.dtype.str} for name, a in arrays.items()
        },
    }
    try:
        meta["sha256"] = _digest(meta, arrays)
    except TypeError as error:
        raise ValueError(
            f"cannot save {type(model).__name__}: its description is not JSON: {error}"
        ) from error
    text = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    tmp = f"{path}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        with open(tmp, "xb") as file:
            np.savez(file, **arrays, **{META: text})
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load(path: str | os.PathLike) -> Any:
    """Read a model written by :func:`save` and return it, parameters restored bit for bit.

    Every check runs before the model is returned; any failure raises :class:`ModelFileError`
    (a ValueError) saying what was wrong: not an ``.npz`` archive (a foreign or truncated file),
    no ``__npflows__`` metadata, bad JSON, another format, a newer format version, a checksum
    mismatch, a class outside the allowlist, missing or extra arrays, a shape or dtype that does not
    match the rebuilt model, or NaN/inf values. A missing or unreadable path raises the usual
    OSError (FileNotFoundError, IsADirectoryError, PermissionError).
    """
    path = os.fspath(path)
    arrays = _read_arrays(path)
    meta, declared = _read_meta(path, arrays.pop(META, None))
    if meta["sha256"] != _digest(meta, arrays):
        raise ModelFileError(
            f"{path}: checksum mismatch; the file was changed after it was saved (tampered or corrupted)"
        )
    _check_same_arrays(path, declared, arrays, "its metadata")
    model = _build(path, meta["model"], _allowed_classes())
    if {a.dtype for a in arrays.values()} == {np.dtype(np.float32)}:
        model.astype(np.float32)  # saved after flow.astype(np.float32)
    live = dict(leaves_with_paths(model.params))
    _check_same_arrays(
        path, {name: (a.shape, a.dtype) for name, a in live.items()}, arrays, "the model"
    )
    for name, array in arrays.items():
        if not np.isfinite(array).all():
            raise ModelFileError(f"{path}: array {name!r} has NaN or inf values")
    for name, leaf in live.items():
        leaf[...] = arrays[name]
    return model


def _digest(meta: dict, arrays: dict[str, np.ndarray]) -> str:
    sha = hashlib.sha256()
    fields = {key: value for key, value in meta.items() if key != "sha256"}
    sha.update(json.dumps(fields, sort_keys=True).encode("utf-8"))
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        sha.update(json.dumps([name, list(array.shape), array.dtype.str]).encode("utf-8"))
        sha.update(array.tobytes())
    return sha.hexdigest()


def _read_arrays(path: str) -> dict[str, np.ndarray]:
    try:
        npz = np.load(path, allow_pickle=False)
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except Exception as error:  # zipfile, zlib and numpy raise many types for a bad file
        raise ModelFileError(
            f"{path}: not an npflows model file (not a readable .npz archive: {error})"
        ) from error
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise ModelFileError(
            f"{path}: not an npflows model file (a single .npy array, not an .npz)"
        )
    with npz:
        try:
            return {name: npz[name] for name in npz.files}
        except Exception as error:
            raise ModelFileError(
                f"{path}: the .npz archive is damaged or truncated: {error}"
            ) from error


def _read_meta(path: str, text: np.ndarray | None) -> tuple[dict, dict]:
    """The metadata dict, checked, and the arrays it declares as {path: (shape, dtype)}."""
    if text is None:
        raise ModelFileError(
            f"{path}: no {META!r} entry; this .npz was not written by npflows.save"
        )
    if text.dtype != np.uint8 or text.ndim != 1:
        raise ModelFileError(
            f"{path}: {META!r} must be a 1-D uint8 array, got {text.dtype} {text.shape}"
        )
    try:
        meta = json.loads(text.tobytes().decode("utf-8"))
    except ValueError as error:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise ModelFileError(f"{path}: the metadata is not valid UTF-8 JSON: {error}") from error
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        got = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise ModelFileError(f"{path}: expected format {FORMAT!r}, got {got!r}")
    version = meta.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ModelFileError(f"{path}: expected a positive integer format version, got {version!r}")
    if version > VERSION:
        raise ModelFileError(
            f"{path}: written by a newer npflows (format version {version}; this npflows reads up to "
            f"{VERSION}); upgrade npflows to load it"
        )
    try:
        if not isinstance(meta["model"], dict) or not isinstance(meta["sha256"], str):
            raise TypeError("'model' must be a dict and 'sha256' a string")
        declared = {
            name: (tuple(int(n) for n in a["shape"]), np.dtype(a["dtype"]))
            for name, a in meta["arrays"].items()
        }
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise ModelFileError(
            f"{path}: metadata must have 'model' (a dict), 'sha256' (a string) and 'arrays' "
            f"(path -> {{'shape': [...], 'dtype': str}}): {error!r}"
        ) from error
    return meta, declared


def _check_same_arrays(path: str, expected: dict, arrays: dict, source: str) -> None:
    """Raise unless ``arrays`` has exactly the names, shapes and dtypes ``expected`` by ``source``."""
    missing, extra = expected.keys() - arrays.keys(), arrays.keys() - expected.keys()
    if missing or extra:
        raise ModelFileError(
            f"{path}: arrays do not match {source}: missing {sorted(missing)}, unexpected {sorted(extra)}"
        )
    for name, (shape, dtype) in expected.items():
        if arrays[name].shape != shape or arrays[name].dtype != dtype:
            raise ModelFileError(
                f"{path}: {source} expects {name!r} with shape {shape} and dtype {dtype}, the file has "
                f"shape {arrays[name].shape} and dtype {arrays[name].dtype}"
            )


def _allowed_classes() -> dict[str, type]:
    """The classes a file may name: those in ``__all__`` of the layer, transformer and distribution
    modules, and ``Flow``."""
    from . import distributions, layers, transformers
    from .flow import Flow

    allowed = {"Flow": Flow}
    for module in (layers, transformers, distributions):
        for name in module.__all__:
            obj = getattr(module, name)
            if isinstance(obj, type):
                allowed[obj.__name__] = obj
    return allowed


def _build(path: str, value: Any, allowed: dict[str, type]) -> Any:
    """Build a description ``{"class": name, "args": {...}}`` (its args first), recursively
    through lists; other values are returned as they are."""
    if isinstance(value, list):
        return [_build(path, item, allowed) for item in value]
    if not (isinstance(value, dict) and "class" in value):
        return value
    name, args = value.get("class"), value.get("args")
    if set(value) != {"class", "args"} or not isinstance(args, dict):
        raise ModelFileError(
            f"{path}: a description must be {{'class': name, 'args': {{...}}}}, got {value!r}"
        )
    if not isinstance(name, str) or name not in allowed:
        raise ModelFileError(
            f"{path}: unknown class {name!r}; npflows builds only its own classes: {sorted(allowed)}"
        )
    args = {key: _build(path, arg, allowed) for key, arg in args.items()}
    try:
        return allowed[name](**args)
    except (TypeError, ValueError) as error:
        raise ModelFileError(f"{path}: cannot build {name} from args {args!r}: {error}") from error
