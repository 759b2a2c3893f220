"""The ``.npz`` container, read and written defensively.

Reading: only a regular file is opened (a FIFO, device or directory is refused without blocking on
it), and every size is checked before anything is allocated: the file against the caller's limit,
each member's extent against the file, each ``.npy`` header's shape and dtype against its member's
length. Members must be stored (uncompressed, as ``numpy.savez`` writes them), so no member can
expand beyond the bytes the file holds.

Writing: a temporary file next to the target, renamed over it (``os.replace``), so the target is
either the old or the new file, never half of one. See docs/files.md, "Writing".
"""

from __future__ import annotations

import math
import os
import re
import stat
import time
import uuid
import zipfile

import numpy as np

from .format import ModelFileError

NPY_MAGIC = b"\x93NUMPY"
TEMP_PATTERN = re.compile(r"\.npflows-(\d+)-[0-9a-f]{8}\.tmp")
STALE_AFTER_SECONDS = 600.0

_KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


def _refuse_non_regular(path: str, mode: int) -> None:
    if not stat.S_ISREG(mode):
        kind = _KINDS.get(stat.S_IFMT(mode), "not a regular file")
        raise ModelFileError(f"{path}: is {kind}, not a model file")


class Archive:
    """An open npflows ``.npz``: ``headers`` maps each array name (the member name without
    ``.npy``) to its (shape, dtype), read and checked; :meth:`read` reads one array."""

    def __init__(self, path: str, max_bytes: int):
        self.path = path
        _refuse_non_regular(path, os.stat(path).st_mode)  # before opening: a FIFO open would block
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
        self.file = os.fdopen(fd, "rb")
        try:
            info = os.fstat(fd)
            _refuse_non_regular(path, info.st_mode)  # the path may have changed since the stat
            if info.st_size > max_bytes:
                raise ModelFileError(
                    f"{path}: the file has {info.st_size} bytes, more than the limit of {max_bytes}; "
                    f"if you trust it, load it with npflows.load(path, max_bytes={info.st_size})"
                )
            self.zip = self._open_zip(info.st_size)
            self.headers: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
            self._members: dict[str, tuple[zipfile.ZipInfo, int, int]] = {}
            for member in self.zip.infolist():
                self._check_member(member, info.st_size)
        except BaseException:
            self.file.close()
            raise

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc) -> None:
        self.file.close()

    def _open_zip(self, size: int) -> zipfile.ZipFile:
        head = self.file.read(len(NPY_MAGIC))
        self.file.seek(0)
        if head == NPY_MAGIC:
            raise ModelFileError(
                f"{self.path}: not an npflows model file (a single .npy array, not an .npz)"
            )
        try:
            return zipfile.ZipFile(self.file)
        except Exception as error:  # zipfile raises many types for a foreign or truncated file
            raise ModelFileError(
                f"{self.path}: not an npflows model file (not a readable .npz archive: {error})"
            ) from error

    def _check_member(self, member: zipfile.ZipInfo, size: int) -> None:
        where = f"{self.path}: member {member.filename!r}"
        if not member.filename.endswith(".npy"):
            raise ModelFileError(f"{where} is not an .npy array; an npflows file holds only those")
        name = member.filename[: -len(".npy")]
        if name in self._members:
            raise ModelFileError(f"{where} appears twice in the archive")
        if member.flag_bits & 0x1:
            raise ModelFileError(f"{where} is encrypted")
        if member.compress_type != zipfile.ZIP_STORED or member.compress_size != member.file_size:
            raise ModelFileError(f"{where} is compressed; npflows.save stores arrays uncompressed")
        if member.header_offset + member.compress_size > size:
            raise ModelFileError(
                f"{where} declares {member.file_size} bytes, beyond the end of the {size}-byte file"
            )
        try:
            with self.zip.open(member) as stream:
                version = np.lib.format.read_magic(stream)
                if version not in ((1, 0), (2, 0)):
                    raise ValueError(f"unsupported .npy format version {version}")
                read_header = (
                    np.lib.format.read_array_header_1_0
                    if version == (1, 0)
                    else np.lib.format.read_array_header_2_0
                )
                shape, fortran_order, dtype = read_header(stream)
                header_bytes = stream.tell()
        except Exception as error:  # numpy parses the header's Python literal; anything may fail
            raise ModelFileError(f"{where} has no readable .npy header: {error}") from error
        if fortran_order:
            raise ModelFileError(f"{where} is in Fortran order; npflows.save writes C order")
        if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
            raise ModelFileError(f"{where} has dtype {dtype}; npflows files hold only numbers")
        data_bytes = math.prod(shape) * dtype.itemsize  # Python ints: no overflow
        if header_bytes + data_bytes != member.file_size:
            raise ModelFileError(
                f"{where} declares shape {shape} and dtype {dtype} ({data_bytes} bytes), but the "
                f"member holds {member.file_size - header_bytes} bytes of data"
            )
        self.headers[name] = (tuple(shape), dtype)
        self._members[name] = (member, header_bytes, data_bytes)

    def read(self, name: str) -> np.ndarray:
        """The array ``name`` (read-only), its size already checked against the file."""
        member, header_bytes, data_bytes = self._members[name]
        shape, dtype = self.headers[name]
        try:
            with self.zip.open(member) as stream:
                stream.read(header_bytes)
                data = stream.read(data_bytes)  # reading to the end also checks the CRC-32
        except Exception as error:
            raise ModelFileError(
                f"{self.path}: member {member.filename!r} is damaged: {error}"
            ) from error
        if len(data) != data_bytes:
            raise ModelFileError(f"{self.path}: member {member.filename!r} is truncated")
        return np.frombuffer(data, dtype=dtype).reshape(shape)


def write_atomically(path: str, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` as an uncompressed ``.npz`` to exactly ``path``, atomically.

    A symlink at ``path`` is written through (its target is replaced; the link stays). An existing
    target keeps its permission bits; a new file gets the default ``0o666 & ~umask``. The data goes
    to ``.npflows-<pid>-<8 hex>.tmp`` in the target's directory (a short name, so any legal target
    name works), is fsynced, then renamed over the target. The temporary file is removed on any
    exception; one left by a killed process is removed by a later save in that directory once
    stale (see :func:`remove_stale_temporaries`).
    """
    target = os.path.realpath(path) if os.path.islink(path) else path
    if os.path.isdir(target):
        raise IsADirectoryError(f"{path}: is a directory; give the path of a model file")
    directory = os.path.dirname(os.path.abspath(target))
    remove_stale_temporaries(directory)
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        mode = None
    tmp = os.path.join(directory, f".npflows-{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
        with os.fdopen(fd, "wb") as file:
            np.savez(file, **arrays)
            file.flush()
            os.fsync(file.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        if os.path.lexists(tmp):
            os.remove(tmp)
        raise
    _fsync_directory(directory)


def remove_stale_temporaries(directory: str) -> None:
    """Remove ``.npflows-<pid>-….tmp`` files in ``directory`` whose writing process no longer runs
    on this machine and that nobody has modified for ``STALE_AFTER_SECONDS``: the remains of a
    save that was killed. A save in progress (its process alive, or its file recently written, as
    by another machine sharing the directory) is left alone. Failures to list or remove are
    ignored: cleaning is a courtesy, never a reason for a save to fail."""
    try:
        names = os.listdir(directory)
    except OSError:
        return
    now = time.time()
    for name in names:
        match = TEMP_PATTERN.fullmatch(name)
        if match is None or int(match.group(1)) == os.getpid() or _is_running(int(match.group(1))):
            continue
        candidate = os.path.join(directory, name)
        try:
            info = os.lstat(candidate)
            if stat.S_ISREG(info.st_mode) and now - info.st_mtime > STALE_AFTER_SECONDS:
                os.remove(candidate)
        except OSError:
            continue


def _is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # it exists under another user (or the number is no pid: leave the file)
    return True


def _fsync_directory(directory: str) -> None:
    """Make the rename durable; skipped where directories cannot be opened (Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
