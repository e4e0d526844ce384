"""The ``tinygrad-rnn`` command (also ``python -m tinygrad_rnn``).

    tinygrad-rnn train      train a character language model (default: an LSTM on the built-in corpus)
    tinygrad-rnn sample     continue a prime text with a trained checkpoint
    tinygrad-rnn sentiment  train the many-to-one sentiment classifier and report its test accuracy
    tinygrad-rnn check      autograd vs hand-derived BPTT vs finite differences, per parameter
                            (the built-in cells, or yours: --cell file.py:ClassName)
    tinygrad-rnn gradflow   ‖∂L/∂h_t‖ over time for RNN, LSTM and GRU (a PNG with matplotlib); with
                            --param, --jacobians, --clip or --contributions: per-step weight shares,
                            Jacobians through time, clipping, the (loss step × use step) matrix

``check`` cross-checks the built-in cells by default (``--cell lstm,gru``: some of them), or a
cell of yours::

    tinygrad-rnn check --cell path/to/file.py:ClassName [--reference path/to/file.py:RefName]
                       [--input-size D --hidden H --seq-len T --batch N --lengths 8,5,2
                        --dtype float64 --loss sum --samples K --seed S]

The file is imported as a module of its own (it may import tinygrad_rnn and numpy); ClassName
must be an ``nn.Cell`` subclass and is built as ``ClassName(input_size, hidden_size)`` after
``tr.manual_seed(seed)``, keeping its own initialisation; parameters that come out in the other
float dtype than ``--dtype`` are cast to it. It runs as ``nn.Recurrent(cell)`` on x (T, N, D),
lengths (a full row first, a short one last, unless ``--lengths``) and a random initial state
shaped like the cell's ``init_state``, all drawn from the seed. With ``--reference`` (a class,
instantiated with no arguments, or an object with ``step_forward(x_t, state, params)`` and
``step_backward(dnew_state, cache)``, params keyed by the cell's own parameter names) the check
is three-way, autograd vs your derivation vs finite differences; without it two-way. It prints
``str(report)`` of ``bptt.crosscheck`` and a verdict: exit status 0 if OK, 1 if not. A missing
file, a spec without ``:ClassName``, a file that fails to import, a missing or wrong class, a
constructor that does not take (input_size, hidden_size), a reference without both methods, and
anything the cell or reference raises while the check runs (a reference returning wrong shapes
included) are one line on stderr naming the culprit, with exit status 2.

Each subcommand is a ``Subcommand(help, add_arguments, run)`` in the ``SUBCOMMANDS`` table:
``add_arguments(parser)`` declares its options and ``run(args) -> exit status`` does the work.
Bad input (a missing or empty text file, a temperature <= 0, a checkpoint that does not fit)
prints one line to stderr and exits with status 2; a diverged training run exits with 1, and
Ctrl-C with 130 (a training run first saves its last whole step, to continue with ``--resume``).
"""
import argparse
import os
import sys
import time
from typing import Callable, NamedTuple

from . import __version__
from .bptt.check_command import CELL_NAMES, run_check, run_user_check
from .bptt.user_code import is_spec
from .checkpoint import (best_checkpoint_path, checkpoint_parts, checkpoint_to_resume, load_checkpoint,
                         refuse_to_overwrite, required_vocab)
from .data import builtin_corpus, load_text
from .gradflow import (clipping_command, contribution_matrix_command, contributions_command, gradflow_command,
                       jacobians_command)
from .models import default_prime
from .threads import parse_threads
from .train import TrainingDiverged, TrainingInterrupted, train_char_lm, train_sentiment

__all__ = ["main", "build_parser", "Subcommand", "SUBCOMMANDS"]

PROG = "tinygrad-rnn"
DEFAULT_CHECKPOINT = os.path.join("checkpoints", "char_lm.npz")
# the default model and windows of `train`: on the built-in corpus, 1500 steps (the README gives their time on
# 2 cores, quiet and busy) reach 1.75 nats/char on validation against 3.30 for the unigram baseline, with readable
# samples
TRAIN_DEFAULTS = {"cell": "lstm", "hidden": 256, "layers": 1, "dropout": 0.25, "seq_len": 64, "batch_size": 32}


class Subcommand(NamedTuple):
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr and exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


# ===================================================================== train
def _add_train_arguments(parser):
    parser.add_argument("--text", help="UTF-8 text file to train on (default: the built-in corpus of "
                                       "Python's standard-library documentation)")
    parser.add_argument("--cell", choices=("lstm", "gru", "rnn"),
                        help=f"recurrent cell (default {TRAIN_DEFAULTS['cell']}, or the checkpoint's with --resume)")
    parser.add_argument("--hidden", type=int, help=f"hidden size (default {TRAIN_DEFAULTS['hidden']})")
    parser.add_argument("--layers", type=int, help=f"recurrent layers (default {TRAIN_DEFAULTS['layers']})")
    parser.add_argument("--dropout", type=float, help=f"dropout between layers and on the last layer's outputs, while training "
                                                      f"(default {TRAIN_DEFAULTS['dropout']})")
    parser.add_argument("--seq-len", type=int, help=f"truncated-BPTT window length (default {TRAIN_DEFAULTS['seq_len']})")
    parser.add_argument("--batch-size", type=int, help=f"parallel streams (default {TRAIN_DEFAULTS['batch_size']})")
    parser.add_argument("--steps", type=int, default=1500, help="total optimizer steps (default 1500)")
    parser.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate (default 2e-3)")
    parser.add_argument("--clip", type=float, default=5.0, help="gradient norm clip (default 5)")
    parser.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT,
                        help=f"checkpoint file, written atomically (default {DEFAULT_CHECKPOINT})")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint's step and optimizer state")
    parser.add_argument("--force", action="store_true",
                        help="start afresh even if the checkpoint exists, replacing it and its .best twin "
                             "(without --resume or --force, train refuses to)")
    parser.add_argument("--eval-every", type=int, default=250, help="validate and checkpoint every K steps (default 250)")
    parser.add_argument("--sample-every", type=int, default=500, help="print a sample every K steps (0: never)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the initial weights and samples (default 0)")
    parser.add_argument("--threads", type=_threads, default="auto", metavar="{auto,1,2,...}",
                        help="NumPy's BLAS threads: auto (default) runs 1 or as many as BLAS started with, whichever "
                             "gives faster steps, re-measured as training goes (another busy process makes one "
                             "thread faster); a number fixes it. Needs threadpoolctl (pip install -e \".[threads]\")")


def _threads(text):
    """--threads as train_char_lm's ``threads`` (argparse turns the error into a one-line usage error)."""
    try:
        return parse_threads(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _train(args):
    if not (args.resume or args.force):
        refuse_to_overwrite(args.checkpoint, "--resume", "--force", "another --checkpoint")
    model, training = _resumed_settings(args.checkpoint) if args.resume else ({}, {})
    text = load_text(args.text) if args.text else builtin_corpus()
    settings = {  # given on the command line, else the resumed checkpoint's, else the default
        "cell": _first(args.cell, model.get("cell"), TRAIN_DEFAULTS["cell"]),
        "hidden": _first(args.hidden, model.get("hidden_size"), TRAIN_DEFAULTS["hidden"]),
        "layers": _first(args.layers, model.get("num_layers"), TRAIN_DEFAULTS["layers"]),
        "dropout": _first(args.dropout, model.get("dropout"), TRAIN_DEFAULTS["dropout"]),
        "seq_len": _first(args.seq_len, training.get("seq_len"), TRAIN_DEFAULTS["seq_len"]),
        "batch_size": _first(args.batch_size, training.get("batch_size"), TRAIN_DEFAULTS["batch_size"]),
    }
    result = train_char_lm(
        text, steps=args.steps, seq_len=settings["seq_len"], batch_size=settings["batch_size"], lr=args.lr,
        clip=args.clip, cell=settings["cell"], hidden_size=settings["hidden"],
        embedding_dim=model.get("embedding_dim"), num_layers=settings["layers"], dropout=settings["dropout"],
        checkpoint=args.checkpoint,
        resume=args.resume, overwrite=args.force, eval_every=args.eval_every, sample_every=args.sample_every or None,
        seed=args.seed, threads=args.threads)
    print(f"done: step {result.step}, validation {result.val_loss:.3f} nats/char (best {result.best_val_loss:.3f}, "
          f"unigram baseline {result.unigram_loss:.3f}) in {result.seconds:.0f} s; checkpoints "
          f"{args.checkpoint} and {best_checkpoint_path(args.checkpoint)}")
    return 0


def _first(*choices):
    return next(choice for choice in choices if choice is not None)


def _resumed_settings(path):
    """The model config and training settings of the checkpoint to resume from."""
    _, _, _, meta = checkpoint_parts(checkpoint_to_resume(path), path, None, None)
    return meta["config"], meta["training"]


# ===================================================================== sample
def _add_sample_arguments(parser):
    parser.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT, help=f"checkpoint to read (default {DEFAULT_CHECKPOINT})")
    parser.add_argument("--prime", help="text to continue (default: a newline, if the vocabulary has one)")
    parser.add_argument("--length", type=int, default=500, help="characters to generate (default 500)")
    parser.add_argument("--temperature", type=float, default=0.8, help="softmax temperature > 0 (default 0.8)")
    parser.add_argument("--seed", type=int, help="seed for a reproducible sample")


def _sample(args):
    model, vocab, _, _ = load_checkpoint(args.checkpoint)
    vocab = required_vocab(vocab, args.checkpoint)
    prime = default_prime(vocab) if args.prime is None else args.prime
    print(model.sample(vocab, prime, args.length, args.temperature, args.seed))
    return 0


# ===================================================================== sentiment
def _add_sentiment_arguments(parser):
    parser.add_argument("--epochs", type=int, default=5, help="passes over the 2000 training sentences (default 5)")
    parser.add_argument("--cell", choices=("lstm", "gru", "rnn"), default="lstm", help="recurrent cell (default lstm)")
    parser.add_argument("--lr", type=float, default=1e-2, help="Adam learning rate (default 1e-2)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the initial weights and order (default 0)")


def _sentiment(args):
    started = time.perf_counter()
    accuracy = train_sentiment(args.epochs, cell=args.cell, lr=args.lr, seed=args.seed)
    print(f"test accuracy {accuracy:.1%} after {args.epochs} epochs ({time.perf_counter() - started:.0f} s)")
    return 0


# ===================================================================== check
def _add_check_arguments(parser):
    parser.add_argument("--cell", default="all", metavar="CELLS|FILE.py:CLASS",
                        help="built-in cells: rnn, rnn_relu, rnn_sigmoid, lstm, gru, a comma-separated list, or all "
                             "(default); or a cell of yours: an nn.Cell subclass CLASS in the Python file FILE.py "
                             "(which may import tinygrad_rnn and numpy), built as CLASS(input_size, hidden_size) "
                             "after seeding (so with its own initialisation), its parameters cast to --dtype if "
                             "they come out in the other float dtype, and checked as nn.Recurrent(cell) (built-in "
                             "names and a file cannot be mixed)")
    parser.add_argument("--reference", metavar="FILE.py:NAME",
                        help="with --cell FILE.py:CLASS: your hand-derived step, NAME in FILE.py: a class "
                             "(instantiated with no arguments) or an object, with step_forward(x_t, state, params) "
                             "-> (new_state, cache) and step_backward(dnew_state, cache) -> (dx_t, dstate, dparams), "
                             "params keyed by the cell's own parameter names: a three-way check (without it, "
                             "two-way: autograd vs finite differences)")
    parser.add_argument("--dtype", choices=("float64", "float32"), default="float64", help="default float64")
    parser.add_argument("--seq-len", type=int, default=8, help="time steps T (default 8)")
    parser.add_argument("--hidden", type=int, default=6, help="hidden size H (default 6)")
    parser.add_argument("--input-size", type=int, default=5, help="input size D (default 5)")
    parser.add_argument("--batch", type=int, help="rows N (default 3, or as many as --lengths)")
    parser.add_argument("--lengths", help="each row's length, comma-separated ints in 1..T, e.g. 8,5,2 (default: "
                                          "drawn from the seed, a full row first and a short one last)")
    parser.add_argument("--loss", choices=("sum", "many_to_many", "many_to_one"), default="sum",
                        help="sum(outputs * upstream), or softmax cross-entropy at every step / the last step")
    parser.add_argument("--samples", type=int, default=24,
                        help="entries of each gradient the finite differences sample (default 24)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights and data (default 0)")


def _check(args):
    lengths = _lengths(args.lengths)
    batch = args.batch if args.batch is not None else len(lengths) if lengths is not None else 3
    if lengths is not None and len(lengths) != batch:
        raise ValueError(f"--lengths gives {len(lengths)} lengths but --batch is {batch}: one length per row")
    options = dict(dtype=args.dtype, seq_len=args.seq_len, hidden=args.hidden, input_size=args.input_size,
                   batch=batch, loss=args.loss, samples=args.samples, seed=args.seed, lengths=lengths)
    names = [name.strip() for name in args.cell.split(",")]
    if is_spec(args.cell):
        built_in = [name for name in names if name in CELL_NAMES or name == "all"]
        if built_in:
            raise ValueError(f"--cell takes built-in cells or one FILE.py:CLASS of yours, not both: got "
                             f"{', '.join(built_in)} with {', '.join(n for n in names if n not in built_in)}")
        if args.cell.count(".py:") > 1:
            raise ValueError(f"--cell takes one FILE.py:CLASS at a time, got {args.cell!r}")
        text, ok = run_user_check(args.cell.strip(), args.reference, **options)
    else:
        if args.reference is not None:
            raise ValueError("--reference goes with --cell FILE.py:CLASS (a cell of yours); the built-in cells "
                             "are checked against their own references in tinygrad_rnn.bptt")
        cells = "all" if args.cell == "all" else tuple(names)
        text, ok = run_check(cells=cells, **options)
    print(text)
    return 0 if ok else 1


def _lengths(text):
    """--lengths "8,5,2" as a list of ints (None when not given)."""
    if text is None:
        return None
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise ValueError(f"--lengths must be comma-separated ints such as 8,5,2, got {text!r}") from None


# ===================================================================== gradflow
def _gradflow_picture(mode, param):
    """The PNG a gradflow mode writes unless --out says otherwise: one name per mode, so none overwrites another's."""
    if mode == "contributions":
        return "contributions.png" if param in (None, "weight_hh") else f"contributions_{param}.png"
    return {"hidden": "gradflow.png", "param": f"gradflow_{param}.png", "jacobians": "jacobians.png",
            "clip": "clipping.png"}[mode]


def _add_gradflow_arguments(parser):
    parser.add_argument("--cells", help="comma-separated cells (default rnn,lstm,gru; with --clip, rnn)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--jacobians", action="store_true",
                      help="instead: the singular values of ∂s_{T-1}/∂s_t over t, the measured norm and the product "
                           "bound ∏‖J_k‖₂ (one sequence: --batch 1)")
    mode.add_argument("--clip", nargs="*", choices=("norm", "value"), metavar="{norm,value}",
                      help="instead: ‖∂L/∂h_t‖ and the gradient of every parameter clipped by norm and/or by value "
                           "at --threshold (tr.optim's clip_grad_norm_ / clip_grad_value_), with the cosine to the "
                           "unclipped gradient; --clip alone compares both")
    mode.add_argument("--contributions", action="store_true",
                      help="instead: the (loss step t × use step k) contribution matrix of ∂L/∂W (W: --param, "
                           "default weight_hh) for a loss at every step, and the long-range fractions")
    parser.add_argument("--param", choices=("weight_hh", "weight_ih", "bias_hh", "bias_ih"),
                        help="instead: each step's contribution to this tied parameter's gradient (with "
                             "--contributions: the parameter of the matrix)")
    parser.add_argument("--threshold", type=float, help="with --clip: the clipping threshold (default 1)")
    parser.add_argument("--seq-len", type=int, default=100, help="time steps (default 100)")
    parser.add_argument("--hidden", type=int, default=32, help="hidden size (default 32)")
    parser.add_argument("--input-size", type=int, default=8, help="input size (default 8)")
    parser.add_argument("--batch", type=int, default=1, help="sequences (default 1)")
    parser.add_argument("--nonlinearity", choices=("tanh", "relu"), default="tanh", help="the RNN's (default tanh)")
    parser.add_argument("--init", choices=("default", "identity", "orthogonal"), default="default",
                        help="weight_hh: PyTorch's default U(-1/√H, 1/√H), or each gate's block --scale·I or "
                             "--scale·(an orthogonal matrix)")
    parser.add_argument("--scale", type=float, default=1.0, help="with --init identity/orthogonal (default 1)")
    parser.add_argument("--forget-bias", type=float, default=0.0,
                        help="added to the LSTM's forget-gate bias (default 0)")
    parser.add_argument("--dtype", choices=("float64", "float32"), default="float64", help="default float64")
    parser.add_argument("--out", help="PNG to write when matplotlib is installed (default gradflow.png; "
                                      "gradflow_PARAM.png with --param, jacobians.png, clipping.png, "
                                      "contributions.png)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights and data (default 0)")


def _gradflow(args):
    setup = dict(seq_len=args.seq_len, hidden=args.hidden, input_size=args.input_size, batch=args.batch,
                 seed=args.seed, nonlinearity=args.nonlinearity, init_name=args.init, scale=args.scale,
                 forget_bias=args.forget_bias, dtype=args.dtype)
    if args.param and (args.jacobians or args.clip is not None):
        raise ValueError("--param goes alone or with --contributions, not with --jacobians or --clip")
    if args.threshold is not None and args.clip is None:
        raise ValueError("--threshold goes with --clip")
    cells = args.cells or ("rnn" if args.clip is not None else "rnn,lstm,gru")
    cells = tuple(name.strip() for name in cells.split(","))
    mode = ("jacobians" if args.jacobians else "clip" if args.clip is not None else "contributions"
            if args.contributions else "param" if args.param else "hidden")
    out = args.out or _gradflow_picture(mode, args.param)
    if mode == "jacobians":
        text = jacobians_command(cells, out=out, **setup)
    elif mode == "clip":
        threshold = 1.0 if args.threshold is None else args.threshold
        text = clipping_command(cells, threshold=threshold, methods=tuple(args.clip) or ("norm", "value"), out=out,
                                **setup)
    elif mode == "contributions":
        text = contribution_matrix_command(cells, param=args.param or "weight_hh", out=out, **setup)
    elif mode == "param":
        text = contributions_command(cells, param=args.param, out=out, **setup)
    else:
        text = gradflow_command(cells, out=out, **setup)
    print(text)
    return 0


SUBCOMMANDS = {
    "train": Subcommand("train a character language model", _add_train_arguments, _train),
    "sample": Subcommand("generate text from a trained checkpoint", _add_sample_arguments, _sample),
    "sentiment": Subcommand("train the many-to-one sentiment classifier", _add_sentiment_arguments, _sentiment),
    "check": Subcommand("cross-check autograd against hand-derived BPTT", _add_check_arguments, _check),
    "gradflow": Subcommand("gradient norms over time, per cell", _add_gradflow_arguments, _gradflow),
}


# ===================================================================== entry point
def build_parser():
    parser = _Parser(prog=PROG, description="Recurrent networks over NumPy, trained by a small autodiff engine.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, subcommand in SUBCOMMANDS.items():
        sub = commands.add_parser(name, help=subcommand.help, description=subcommand.help)
        subcommand.add_arguments(sub)
        sub.set_defaults(run=subcommand.run)
    return parser


def main(argv=None):
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, OSError) as error:
        return _fail(error, 2)
    except TrainingDiverged as error:
        return _fail(error, 1)
    except TrainingInterrupted as interrupt:
        resume = "; continue with --resume" if interrupt.saved_step is not None else ""
        print(f"{PROG}: {interrupt}{resume}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


def _fail(error, status):
    """Print ``error`` as one line on stderr; return ``status``."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    print(f"{PROG}: error: {' '.join(lines[:1] + ['; '.join(lines[1:])]).strip()}", file=sys.stderr)
    return status
