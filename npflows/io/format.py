"""The npflows file format's constants, its error type, its checksum and its argument checks."""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import numpy as np

FORMAT = "npflows"
VERSION = 1
META = "__npflows__"
DEFAULT_MAX_BYTES = 2**30  # 1 GiB; see docs/files.md, "Size limit"
MAX_DEPTH = 100  # nesting levels of the JSON description; a real model has fewer than 20


class ModelFileError(ValueError):
    """A file that :func:`npflows.load` refuses: not an npflows model, damaged, tampered with,
    too large for the size limit, or naming a class that is not registered."""


def digest(meta: dict, arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 over the JSON fields other than "sha256" (sorted keys), then every array in sorted
    path order as the JSON header ``[path, shape, dtype]`` followed by its raw C-order bytes."""
    sha = hashlib.sha256()
    fields = {key: value for key, value in meta.items() if key != "sha256"}
    sha.update(json.dumps(fields, sort_keys=True).encode("utf-8"))
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        sha.update(json.dumps([name, list(array.shape), array.dtype.str]).encode("utf-8"))
        sha.update(array.data)
    return sha.hexdigest()


def check_path(path: Any) -> str:
    """``path`` as a str, or TypeError/ValueError naming what is wrong with it."""
    if isinstance(path, bytes) or not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = os.fspath(path)
    if not isinstance(path, str):
        raise TypeError(f"path must name a file with a str, got {type(path).__name__}")
    if not path or "\0" in path:
        raise ValueError(f"path must be a non-empty file name without NUL characters, got {path!r}")
    return path


def check_max_bytes(max_bytes: Any) -> int:
    """``max_bytes`` as a positive int, or TypeError/ValueError."""
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, (int, np.integer)):
        raise TypeError(f"max_bytes must be an int, got {type(max_bytes).__name__}")
    if max_bytes < 1:
        raise ValueError(f"max_bytes must be positive, got {max_bytes}")
    return int(max_bytes)
