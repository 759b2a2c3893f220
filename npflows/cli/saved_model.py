"""``python -m npflows sample`` and ``score``: the two subcommands that use a saved model."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import images
from .common import add_command, int_at_least, load_flow, points_file, read_points, write_points

MODEL_HELP = "a model.npz written by fit or fit-density"


def sample_command(args: argparse.Namespace) -> int:
    """Draw N points from a saved flow and print them as CSV, one point per line (the shortest
    numbers that read back as the same float64), or write them to FILE (.npy or .csv)."""
    x = load_flow(args.model).sample(args.n, args.seed)
    write_points(images.as_rows(x, args.out), args.out)
    if args.out is not None:
        print(f"saved {args.n} points to {args.out}")
    return 0


def score_command(args: argparse.Namespace) -> int:
    """Print log q(x) in nats for each row x of FILE, one per line, under the saved flow q (or, with
    --mean, their mean)."""
    flow = load_flow(args.model)
    if images.is_image_flow(flow):
        x = images.read_images(args.file, flow)
    else:
        x = read_points(args.file)
    if x.shape[1:] != flow.event_shape and x.shape[1] != flow.dim:
        raise ValueError(
            f"{args.file} has points of {x.shape[1]} coordinates; {args.model} expects {flow.dim}"
        )
    log_q = flow.log_prob(x)  # (N,)
    if args.mean:
        print(repr(float(log_q.mean())))
    else:
        sys.stdout.write("".join(f"{v!r}\n" for v in log_q.tolist()))
    return 0


def add_parsers(commands) -> None:
    """Register ``sample`` and ``score``."""
    p = add_command(commands, "sample", sample_command, "draw points from a saved model")
    p.add_argument("model", type=Path, metavar="MODEL", help=MODEL_HELP)
    p.add_argument("-n", type=int_at_least(0), required=True, metavar="N", help="how many points")
    p.add_argument("--seed", type=int, metavar="INT", help="default: fresh randomness")
    p.add_argument(
        "--out",
        type=points_file,
        metavar="FILE",
        help="a .npy or .csv file to write (default: CSV on standard output)",
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
