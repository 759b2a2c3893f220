"""``python -m npflows sample`` and ``score``: the two subcommands that use a saved model."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

from . import common, images
from .common import (
    SEED,
    add_command,
    add_skip_columns,
    check_points_size,
    int_at_least,
    load_flow,
    points_file,
    sample_in_chunks,
    split_columns,
)
from .points import iter_points, write_points

MODEL_HELP = "a model.npz written by fit or fit-density"


def sample_command(args: argparse.Namespace) -> int:
    """Draw N points from a saved flow and print them as CSV, one point per line (the shortest
    numbers that read back as the same float64), or write them to FILE (.npy or .csv). N points of
    D coordinates may take at most 1 GiB (N·D·8 bytes).

    A conditional model (fit --context-columns C) needs --context: C comma-separated numbers in the
    units of the training file's context columns, used for all N points; the points written are
    the data columns only."""
    flow = load_flow(args.model)
    check_points_size(args.n, flow.dim, "-n")
    context = context_row(flow, args.context, args.model)
    x = sample_in_chunks(flow, args.n, np.random.default_rng(args.seed), context)
    write_points(images.as_rows(x, args.out), args.out)
    if args.out is not None:
        print(f"saved {args.n} points to {args.out}")
    return 0


def score_command(args: argparse.Namespace) -> int:
    """Print log q(x) in nats for each row x of FILE, one per line, under the saved flow q (or, with
    --mean, their mean). The file is read and scored a chunk of rows at a time (a .npy file
    memory-mapped), so it may be larger than memory; the mean is summed exactly (math.fsum), so
    it does not depend on the chunks.

    A conditional model (fit --context-columns C) reads FILE with the training file's layout: each
    row is a point followed by its C context values, and log q(x | c) is printed."""
    flow = load_flow(args.model)
    if images.is_image_flow(flow):  # image files are read whole
        log_q = flow.log_prob(images.read_images(args.file, flow))
        if args.mean:
            print(repr(math.fsum(log_q.tolist()) / len(log_q)))
        else:
            sys.stdout.write("".join(f"{v!r}\n" for v in log_q.tolist()))
        return 0
    total, count, below_float64 = [], 0, 0
    width = flow.dim + flow.context_dim
    for rows in iter_points(args.file, args.skip_columns, common.CHUNK_ROWS):
        if rows.shape[1] != width:
            context = f" and {flow.context_dim} context value(s)" if flow.context_dim else ""
            raise ValueError(
                f"{args.file} has rows of {rows.shape[1]} values; {args.model} expects "
                f"{flow.dim} coordinate(s){context}"
            )
        log_q = flow.log_prob(*split_columns(rows, flow.context_dim))  # (N_chunk,)
        below_float64 += int(np.count_nonzero(log_q == -np.inf))
        if args.mean:
            total.append(math.fsum(log_q.tolist()))
            count += len(log_q)
        else:
            sys.stdout.write("".join(f"{v!r}\n" for v in log_q.tolist()))
    if args.mean:
        print(repr(math.fsum(total) / count))
    if below_float64:
        print(
            f"note: {below_float64} point(s) have a log-density below the most negative float64 "
            "(-1.8e308), printed as -inf: they lie far outside the model's data",
            file=sys.stderr,
        )
    return 0


def context_row(flow, text: str | None, model: Path) -> np.ndarray | None:
    """The --context values as one row (1, C) for a conditional flow, or None; a ValueError when
    they are missing, not wanted, or not C finite numbers."""
    if not flow.context_dim:
        if text is not None:
            raise ValueError(f"{model} is not a conditional flow; it takes no --context")
        return None
    if text is None:
        raise ValueError(
            f"{model} is a conditional flow: pass --context with {flow.context_dim} "
            "comma-separated number(s)"
        )
    try:
        values = [float(cell) for cell in text.split(",")]
    except ValueError:
        raise ValueError(f"--context must be comma-separated numbers, got {text!r}") from None
    if len(values) != flow.context_dim or not np.isfinite(values).all():
        raise ValueError(
            f"--context must be {flow.context_dim} finite number(s) for {model}, got {text!r}"
        )
    return np.array([values])


def add_parsers(commands) -> None:
    """Register ``sample`` and ``score``."""
    p = add_command(commands, "sample", sample_command, "draw points from a saved model")
    p.add_argument("model", type=Path, metavar="MODEL", help=MODEL_HELP)
    p.add_argument("-n", type=int_at_least(0), required=True, metavar="N", help="how many points")
    p.add_argument("--seed", type=SEED, metavar="INT", help="default: fresh randomness")
    p.add_argument(
        "--out",
        type=points_file,
        metavar="FILE",
        help="a .npy or .csv file to write (default: CSV on standard output)",
    )
    p.add_argument(
        "--context",
        metavar="C1,C2,...",
        help="for a conditional model: its context, comma-separated numbers\n"
        "in the units of the training file's context columns, e.g. 0.5,1.0",
    )

    p = add_command(commands, "score", score_command, "log-density of each row of a file")
    p.add_argument("model", type=Path, metavar="MODEL", help=MODEL_HELP)
    p.add_argument(
        "file",
        type=points_file,
        metavar="FILE",
        help="a .npy or .csv file of points, one per row; - reads CSV from standard input",
    )
    p.add_argument("--mean", action="store_true", help="print only the mean over the rows")
    add_skip_columns(p)
