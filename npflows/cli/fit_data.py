"""``python -m npflows fit``: maximum-likelihood training on a built-in data set or a file."""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
import scipy.linalg

from .. import datasets, plotting
from ..context_map import absorb_context_map, context_map_from_data
from ..flow import Flow
from ..io import save
from ..layers.standardize import Standardize, standardized
from ..schedules import default_schedule
from ..train import TrainingDiverged, fit
from . import images
from .common import (
    FLOWS,
    PLOT_HINT,
    POSITIVE,
    UsageError,
    add_command,
    add_skip_columns,
    add_training_options,
    build_prebuilt,
    check_points_size,
    int_at_least,
    listed,
    log_prob_in_chunks,
    positive_float,
    split_columns,
    staged_output,
    stderr,
)
from .points import read_points

DEFAULTS = {  # option: (its default for 1-D data, for data of two or more dimensions)
    "flow": ("spline", "nsf"),
    "n_train": (10_000, 20_000),
    "epochs": (40, 30),
    "batch_size": (256, 512),
    "lr": (1e-2, 5e-3),
}
N_TEST = 10_000  # test points drawn from a built-in data set by default
TEST_FRACTION = 0.1  # of a file's rows, held out for testing
MIN_FILE_ROWS = 10  # a file's rows must leave training, validation and test points
WORSE_PER_COORDINATE = (
    0.1  # nats per D: a fit whose best epoch is this much worse than its start is refused
)


def fit_command(args: argparse.Namespace) -> int:
    """Train a flow by maximum likelihood on a built-in data set, or on the points in a .npy or
    .csv file (one per row; 10% of the rows are held out for testing, 10% of the rest for
    validation). Print the test NLL beside that of a Gaussian fitted to the same training points
    and, for a data set with a known density p, its entropy and KL(p‖q) for the flow's density q.

    The flow's last layer is a fixed npflows.Standardize (x = mean + scale ⊙ h, the training
    points' column means and standard deviations, its log-det counted), so the model is a density
    of the data in data units and the fit is the same at any scale of the data. Data with a
    (nearly) constant column is refused.

    The model goes to DIR/model.npz and a plot of the data, q and samples of q to DIR/density.png
    (1-D and 2-D data). They are written to a hidden directory inside DIR and moved into place only
    when training succeeded: a run that diverges (a NaN or inf, or no epoch whose validation NLL
    comes within 0.1 nats per coordinate of the start's) exits 1 and leaves DIR as it was.

    Conditional flows: with --context-columns C the last C columns of the file are a context c and
    the flow is a density q(x | c) of the other columns (nsf by default). The context columns are
    standardized too (their training means and standard deviations) and that fixed map is folded
    into the flow's conditioner networks (npflows.context_map), so the saved model takes the
    context in the file's units: sample MODEL -n 5 --context 0.5 and score MODEL FILE (rows laid
    out as in the training file). The Gaussian baseline is then the conditional Gaussian of x given
    c (a Gaussian of the rows (x, c), conditioned); no density.png is drawn."""
    if args.data in images.IMAGE_DATA or args.flow in images.IMAGE_FLOWS:
        if args.context_columns:
            raise UsageError("--context-columns applies to a file of points, not to images")
        return images.fit_command(args)
    rng_data, rng_test, rng_fit, rng_init = map(
        np.random.default_rng, np.random.SeedSequence(args.seed).spawn(4)
    )
    dataset, x_train, x_test = load_data(args, rng_data, rng_test)
    name = args.data.stem if dataset is None else args.data
    k = args.context_columns
    if k >= x_train.shape[1]:
        raise ValueError(
            f"--context-columns {k} leaves no data column: {args.data} has {x_train.shape[1]} "
            "column(s)"
        )
    rows_train, rows_test = x_train, x_test
    (x_train, c_train), x_test = split_columns(x_train, k), split_columns(x_test, k)[0]
    dim = x_train.shape[1]
    opts = {  # the options whose default depends on the dimension (n_train: see load_data)
        key: DEFAULTS[key][dim > 1 or k > 0] if getattr(args, key) is None else getattr(args, key)
        for key in ("flow", "epochs", "batch_size", "lr")
    }
    flow = standardized(
        build_prebuilt(opts["flow"], dim, args.hidden, args.layers, rng_init, k), x_train
    )
    context_map = None if c_train is None else context_map_from_data(c_train)
    if not flow.has_inverse_vjp:
        raise ValueError(
            f"the {opts['flow']} flow has no inverse_vjp (its density is computed one coordinate at a time), so it "
            "cannot be fitted to data; use maf, its mirror, or train it with fit-density"
        )
    out = Path("runs") / name if args.out is None else args.out
    with staged_output(out) as stage:  # before training, so a bad --out fails at once
        print(
            f"fitting a {opts['flow']} flow to {len(x_train)} points of {name!r} in {dim}-D "
            f"(10% held out for validation; seed {args.seed})"
            + (f", conditional on the last {k} column(s)" if k else "")
        )
        try:
            with warnings.catch_warnings():  # "did not improve" is judged and reported below
                warnings.filterwarnings("ignore", "fit did not improve", RuntimeWarning)
                history = fit(
                    flow,
                    x_train,
                    context=None if context_map is None else context_map.inverse(c_train)[0],
                    epochs=opts["epochs"],
                    batch_size=opts["batch_size"],
                    lr=opts["lr"] if args.schedule == "constant" else default_schedule(opts["lr"]),
                    validation_fraction=0.1,
                    patience=None,
                    rng=rng_fit,
                    progress=not args.no_progress,
                )
        except TrainingDiverged as error:
            raise TrainingDiverged(
                f"training diverged: {error} Nothing was written to {out}."
            ) from error
        if not history.improved:
            best_after = min(history.val_nll)
            if not best_after <= history.initial_nll + WORSE_PER_COORDINATE * dim:
                raise TrainingDiverged(
                    f"training diverged: the validation NLL went from {history.initial_nll:.4g} "
                    f"nats at the start to {best_after:.4g} at best (try a lower --lr than "
                    f"{opts['lr']:g}). Nothing was written to {out}."
                )
            print("note: no epoch improved on the starting model, which is kept")
        schedule = "constant" if args.schedule == "constant" else "2% warm-up, cosine decay"
        print(
            f"trained {len(history.train_nll)} epochs, {history.steps} Adam steps (lr {opts['lr']:g}, "
            f"{schedule}); best validation NLL at epoch {history.best_epoch + 1}"
            if history.improved
            else f"trained {len(history.train_nll)} epochs, {history.steps} Adam steps"
        )
        if context_map is not None:
            absorb_context_map(flow, context_map)  # the saved model takes the raw context
        nll = report_test(flow, rows_train, rows_test, dataset, k)
        save(flow, stage / "model.npz")
        title = f"{name}, {opts['flow']} flow: test NLL {nll:.3f} nats"
        plotted = (
            dim <= 2
            and not k
            and plotting.plot_fit(stage / "density.png", flow, x_test, title, dataset, rng_init)
        )
    print(f"saved {out / 'model.npz'}")
    if k:
        print("no density.png: the plot shows unconditional flows")
    elif dim > 2:
        print(f"no density.png: the plot shows 1-D and 2-D data, not {dim}-D")
    elif plotted:
        print(f"saved {out / 'density.png'}")
    else:
        print(f"{PLOT_HINT} density.png")
    return 0


def load_data(args: argparse.Namespace, rng_data, rng_test):
    """(the built-in data set, or None for a file; training points; test points)."""
    if isinstance(args.data, str):
        if args.skip_columns or args.context_columns:
            raise UsageError(
                "--skip-columns and --context-columns apply to a file, not to a built-in data set"
            )
        dataset = datasets.get(args.data)
        n_train = DEFAULTS["n_train"][dataset.dim > 1] if args.n_train is None else args.n_train
        n_test = N_TEST if args.n_test is None else args.n_test
        check_points_size(n_train, dataset.dim, "--n-train")
        check_points_size(n_test, dataset.dim, "--n-test")
        check_points_size(args.batch_size or 0, dataset.dim, "--batch-size")
        return dataset, dataset.sample(n_train, rng_data), dataset.sample(n_test, rng_test)
    if args.n_train is not None or args.n_test is not None:
        raise UsageError("--n-train and --n-test apply to built-in data sets, not to a file")
    x = rng_data.permutation(read_points(args.data, args.skip_columns))
    if len(x) < MIN_FILE_ROWS:
        raise ValueError(
            f"{args.data} has {len(x)} row(s); fit needs at least {MIN_FILE_ROWS} points (10% are "
            "held out for testing and 10% of the rest for validation)"
        )
    n_test = max(1, round(TEST_FRACTION * len(x)))
    print(f"read {len(x)} points from {args.data}; {n_test} of them held out for testing")
    return None, x[n_test:], x[:n_test]


def report_test(
    flow: Flow,
    x_train: np.ndarray,
    x_test: np.ndarray,
    dataset: datasets.Dataset | None,
    context_columns: int = 0,
) -> float:
    """Print the test NLL beside a Gaussian baseline's and, where the data's density p is known,
    its entropy and KL(p‖q), estimated by the mean of log p − log q over the test points (samples
    of p, so log p is finite even where p has bounded support); return the NLL.

    With ``context_columns`` k > 0 the rows' last k columns are the context c, the NLL is that of
    q(x | c), and the baseline the conditional Gaussian: log N(x | c) = log N(x, c) − log N(c), the
    joint and its marginal fitted to the training rows."""
    k = context_columns
    log_q = log_prob_in_chunks(flow, *split_columns(x_test, k))  # (n_test,)
    nll = -float(log_q.mean())
    print(
        f"test NLL      {nll:.4f} ± {stderr(log_q):.4f} nats ({len(x_test)} points, "
        "± one standard error)"
    )
    log_g = gaussian_log_density(x_train, x_test)
    if k and log_g is not None:
        log_c = gaussian_log_density(x_train[:, -k:], x_test[:, -k:])
        log_g = None if log_c is None else log_g - log_c
    if log_g is None:
        print("Gaussian NLL  none: the training points' covariance is singular")
    else:
        print(
            f"Gaussian NLL  {-log_g.mean():.4f} ± {stderr(log_g):.4f} nats (baseline: a "
            f"full-covariance Gaussian{' of x given c' if k else ''} fitted to the training points)"
        )
    if dataset is None or dataset.log_density is None:
        print("(the data's density is not known, so there is no KL(p‖q) to report)")
        return nll
    log_ratio = dataset.log_density(x_test) - log_q  # log p − log q
    print(f"entropy H[p]  {dataset.entropy():.4f} nats (p: the data's density, exactly known)")
    print(
        f"KL(p‖q)       {log_ratio.mean():.4f} ± {stderr(log_ratio):.4f} nats: the mean of "
        "log p − log q over the test points (q: the flow's density)"
    )
    return nll


def gaussian_log_density(x_train: np.ndarray, x_test: np.ndarray) -> np.ndarray | None:
    """log N(x; m, Σ) of each test row (N,), m and Σ the maximum-likelihood mean and covariance of
    ``x_train``; None when Σ is singular. Computed on standardized values u = (x − mean) / scale
    (robust at any scale of the data), whose log-det −Σ_d log scale_d converts back to data units:
    log N(x) = −½‖L⁻¹(u − m_u)‖² − Σ_d log L_dd − (D/2) log 2π − Σ_d log scale_d, Σ_u = L Lᵀ."""
    data_side = Standardize.from_data(x_train)
    u_train, _ = data_side.inverse(x_train)  # (N_train, D)
    u_test, log_det = data_side.inverse(x_test)  # (N_test, D), (N_test,) = −Σ_d log scale_d
    m = u_train.mean(axis=0)
    cov = np.atleast_2d(np.cov(u_train, rowvar=False, bias=True))
    try:
        chol = np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        return None
    w = scipy.linalg.solve_triangular(chol, (u_test - m).T, lower=True)  # (D, N_test)
    dim = x_train.shape[1]
    log_norm = -np.log(np.diag(chol)).sum() - 0.5 * dim * np.log(2 * np.pi)
    return -0.5 * (w**2).sum(axis=0) + log_norm + log_det


def add_parsers(commands) -> None:
    """Register ``fit``."""
    p = add_command(commands, "fit", fit_command, "train a flow on a data set or a .npy/.csv file")
    p.add_argument(
        "--data",
        type=data_source,
        default="bimodal",
        metavar="NAME|FILE",
        help=f"a built-in data set:\n{listed([*datasets.DATASETS, *images.IMAGE_DATA])};\n"
        "or a .npy/.csv file of points, one per row (the delimiter, comma,\n"
        "semicolon, tab or spaces, and a header line are detected)\n"
        "(default: %(default)s)",
    )
    p.add_argument(
        "--flow",
        choices=[*FLOWS, *images.IMAGE_FLOWS],
        metavar="FLOW",
        help=f"{listed(FLOWS)}\n({per_dim_default('flow')});\n"
        f"for --data digits: {', '.join(images.IMAGE_FLOWS)} (default: glow)",
    )
    p.add_argument(
        "--n-train",
        type=int_at_least(2),
        metavar="N",
        help="points drawn from a built-in data set for training, 10%% of them for\n"
        f"validation ({per_dim_default('n_train')});\n"
        "at most 1 GiB of points (N·D·8 bytes)",
    )
    p.add_argument(
        "--n-test",
        type=int_at_least(2),
        metavar="N",
        help=f"points drawn from a built-in data set for testing (default: {N_TEST})",
    )
    p.add_argument("--epochs", type=POSITIVE, metavar="N", help=per_dim_default("epochs"))
    p.add_argument("--batch-size", type=POSITIVE, metavar="N", help=per_dim_default("batch_size"))
    p.add_argument(
        "--lr",
        type=positive_float,
        metavar="RATE",
        help=f"Adam's (peak) step size; {per_dim_default('lr')}",
    )
    p.add_argument(
        "--schedule",
        choices=("cosine", "constant"),
        default="cosine",
        help="cosine: a linear warm-up over the first 2%% of the steps to --lr,\n"
        "then cosine decay to 0 (npflows.schedules.default_schedule);\n"
        "constant: --lr throughout (default: cosine)",
    )
    add_skip_columns(p)
    p.add_argument(
        "--context-columns",
        type=int_at_least(0),
        default=0,
        metavar="C",
        help="fit a conditional flow q(x | c): the last C columns of the file\n"
        "(after --skip-columns) are the context c, the others the points x;\n"
        "the context is standardized and the saved model takes it raw\n"
        "(sample MODEL --context ..., score MODEL FILE) (default: 0)",
    )
    add_training_options(p, "the data, the split, the flow and the batches", "runs/<data>")


def data_source(text: str) -> str | Path:
    """An argparse ``type``: a built-in data set's name, or a path ending in .npy or .csv."""
    if text in datasets.DATASETS or text in images.IMAGE_DATA:
        return text
    if Path(text).suffix.lower() in (".npy", ".csv"):
        return Path(text)
    raise argparse.ArgumentTypeError(
        f"expected a built-in data set ({', '.join(datasets.DATASETS)}) or a .npy/.csv file, "
        f"got {text!r}"
    )


def per_dim_default(option: str) -> str:
    """The help for an option whose default depends on the data's dimension."""
    one, more = DEFAULTS[option]
    return f"default: {one} for 1-D data, {more} otherwise"
