"""Points in users' files: .npy arrays and delimited text (CSV), read in chunks of rows, and
written back exactly.

A text file's delimiter is detected from its first lines (``csv.Sniffer`` over comma, semicolon,
tab and space; runs of spaces or tabs count as one); a first line that is not all numbers is a
header. Errors name the file, the line and the column. A first column that is a pandas index
(empty header, values 0, 1, 2, …) is refused with the option that drops it.
"""

from __future__ import annotations

import contextlib
import csv
import itertools
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

SNIFF_LINES = 20  # lines read to detect the delimiter
DELIMITERS = ",;\t "


def read_points(path: Path, skip_columns: int = 0, chunk_rows: int = 2**16) -> np.ndarray:
    """All the points of ``path`` as float64 (N, D); see :func:`iter_points`."""
    chunks = list(iter_points(path, skip_columns, chunk_rows))
    return np.concatenate(chunks)


def iter_points(path: Path, skip_columns: int = 0, chunk_rows: int = 2**16) -> Iterator[np.ndarray]:
    """The points of a .npy file (a numeric array (N, D), or (N,) for one coordinate; memory-mapped,
    so a file larger than memory is read a chunk at a time) or a delimited text file (the path
    ``-`` reads standard input), as float64 chunks of at most ``chunk_rows`` rows (N_k, D), after
    dropping the first ``skip_columns`` columns.

    Raises:
        ValueError: saying what is wrong with the file and where: not numbers (the line and column
            of the first cell that is not), an empty cell, rows of different lengths, no rows,
            more than two dimensions, NaN or inf, or a pandas index column.
    """
    if path.suffix.lower() == ".npy":
        chunks = _npy_chunks(path, chunk_rows)
    else:
        chunks = _text_chunks(path, chunk_rows, check_index=skip_columns == 0)
    empty = True
    for chunk, first_row in chunks:
        if chunk.shape[1] <= skip_columns:
            raise ValueError(
                f"{path}: its points have {chunk.shape[1]} coordinate(s), so no column is left "
                f"after skipping {skip_columns}"
            )
        chunk = chunk[:, skip_columns:]
        bad = np.flatnonzero(~np.isfinite(chunk).all(axis=1))
        if bad.size:
            raise ValueError(
                f"{path}: point {first_row + bad[0] + 1} has NaN or inf values; remove or fix it"
            )
        empty = False
        yield chunk
    if empty:
        raise ValueError(f"{path}: no points in the file")


def _npy_chunks(path: Path, chunk_rows: int) -> Iterator[tuple[np.ndarray, int]]:
    try:
        x = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, EOFError) as error:
        raise ValueError(f"{path}: not a numeric .npy array ({error})") from None
    if not isinstance(x, np.ndarray):
        raise ValueError(f"{path}: an .npz archive, not one .npy array")
    if x.dtype.kind not in "iuf":
        raise ValueError(f"{path}: expected numbers, got an array of dtype {x.dtype}")
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.size == 0:
        raise ValueError(f"{path}: expected points in rows, shape (N, D), got shape {x.shape}")
    for start in range(0, len(x), chunk_rows):
        yield np.array(x[start : start + chunk_rows], dtype=np.float64), start


def _text_chunks(
    path: Path, chunk_rows: int, check_index: bool
) -> Iterator[tuple[np.ndarray, int]]:
    stdin = str(path) == "-"
    with contextlib.nullcontext(sys.stdin) if stdin else open(path, encoding="utf-8") as file:
        try:
            head = list(itertools.islice(file, SNIFF_LINES))
            split, delimiter = _splitter(head)
            numbered = enumerate(itertools.chain(head, file), start=1)
            lines = ((number, line) for number, line in numbered if line.strip())
            first = next(lines, None)
            if first is None:
                return
            header = split(first[1].rstrip("\r\n"))
            if _numbers(header) is not None:  # a first line that is not all numbers is a header
                header, lines = None, itertools.chain([first], lines)
            width, first_row = None, 0
            while block := list(itertools.islice(lines, chunk_rows)):
                chunk = _parse_block(path, block, split, delimiter)
                if width is None:
                    width = chunk.shape[1]
                elif chunk.shape[1] != width:
                    raise ValueError(
                        f"{path}: line {block[0][0]} has {chunk.shape[1]} values, the lines "
                        f"before have {width}"
                    )
                if check_index and first_row == 0:
                    _refuse_index(path, header, chunk)
                yield chunk, first_row
                first_row += len(chunk)
        except UnicodeDecodeError as error:
            raise ValueError(f"{path}: not a UTF-8 text file of numbers ({error})") from None


def _splitter(head: list[str]):
    """(a function from a line to its cells, the delimiter for numpy: None for whitespace), for
    the delimiter the first lines use."""
    sample = "".join(line for line in head if line.strip())
    try:
        delimiter = csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csv.Error:  # one column, or nothing to detect
        delimiter = next((d for d in DELIMITERS if d in sample.strip()), None)
    if delimiter in (None, " ", "\t"):
        return str.split, None  # runs of whitespace are one separator

    def split(line: str) -> list[str]:
        return [cell.strip() for cell in next(csv.reader([line], delimiter=delimiter))]

    return split, delimiter


def _parse_block(path, block: list[tuple[int, str]], split, delimiter) -> np.ndarray:
    """The numbers of (line number, text) pairs, (n, width): numpy's parser first (fast), and
    where it fails, line by line, to say which line and column is wrong."""
    try:
        return np.loadtxt(
            [line for _, line in block], delimiter=delimiter, ndmin=2, comments=None, quotechar='"'
        )
    except ValueError:
        pass
    rows, width = [], None
    for number, line in block:
        cells = split(line.rstrip("\r\n"))
        values = _numbers(cells)
        if values is None:
            column = next(i for i, c in enumerate(cells) if _number(c) is None)
            cell = cells[column]
            what = "is empty" if not cell else f"is {cell!r}, not a number"
            if "," in cell:
                what += " (write decimals with a point: 1.5, not 1,5)"
            raise ValueError(f"{path}: line {number}, column {column + 1} {what}")
        if width is None:
            width = len(values)
        elif len(values) != width:
            raise ValueError(
                f"{path}: line {number} has {len(values)} values, the lines before have {width}"
            )
        rows.append(values)
    return np.array(rows)


def _number(cell: str) -> float | None:
    if "_" in cell:  # Python reads "1_0" as 10; numpy's parser, and so this reader, does not
        return None
    try:
        return float(cell)
    except ValueError:
        return None


def _numbers(cells: list[str]) -> list[float] | None:
    values = [_number(cell) for cell in cells]
    return None if any(v is None for v in values) else values


def _refuse_index(path, header: list[str] | None, chunk: np.ndarray) -> None:
    """Refuse a first column written by pandas' ``to_csv`` index: header "" or "Unnamed: 0" and
    values 0, 1, 2, … (checked on the first chunk)."""
    if header is None or header[0] not in ("", "Unnamed: 0") or chunk.shape[1] < 2:
        return
    if np.array_equal(chunk[:, 0], np.arange(len(chunk))):
        raise ValueError(
            f"{path}: column 1 is a row index (header {header[0]!r}, values 0, 1, 2, …), as "
            "pandas' to_csv writes; pass --skip-columns 1 to drop it, or give it a header name "
            "to keep it as data"
        )


def write_points(x: np.ndarray, path: Path | None) -> None:
    """Rows of ``x`` (N, D) to a .npy or .csv ``path``, or as CSV to standard output (None). CSV
    numbers are written in the shortest form that reads back as the same float64."""
    if path is not None and path.suffix.lower() == ".npy":
        np.save(path, x)
        return
    text = "".join(",".join(map(repr, row)) + "\n" for row in x.tolist())
    if path is None:
        sys.stdout.write(text)
    else:
        path.write_text(text)
