"""What ``tinygrad-rnn check`` runs: the cross-check on random data, for the built-in cells
(``run_check``) and for a user's cell and reference loaded from files (``run_user_check``)."""
import inspect

import numpy as np

from .. import nn
from ..random import manual_seed
from ..tensor import no_grad
from . import user_code
from .crosscheck import TOLERANCES, crosscheck
from .sequence import state_of, state_parts

__all__ = ["CELL_NAMES", "run_check", "run_user_check"]

CELL_NAMES = ("rnn", "rnn_relu", "rnn_sigmoid", "lstm", "gru")
_LAYER_OF = {"rnn": (nn.RNN, {"nonlinearity": "tanh"}), "rnn_relu": (nn.RNN, {"nonlinearity": "relu"}),
             "rnn_sigmoid": (nn.RNN, {"nonlinearity": "sigmoid"}), "lstm": (nn.LSTM, {}),
             "gru": (nn.GRU, {})}


def run_check(cells=("rnn", "lstm", "gru"), dtype="float64", seq_len=8, hidden=6, input_size=5,
              batch=3, seed=0, loss="sum", samples=24, lengths=None):
    """Cross-check single-layer layers on random data; what ``tinygrad-rnn check`` prints.

    cells: names from CELL_NAMES, one name, or "all". Each layer gets weights drawn from ``seed``
    (PyTorch's U(-1/sqrt(H), 1/sqrt(H))), x (T, N, D), a random initial state and lengths with a
    full row first and a short one (about T/3) last, unless ``lengths`` (N,) are given. Returns
    (text, ok): the reports' tables and a last line with the verdict; ok is True when every report is.
    """
    names = CELL_NAMES if cells == "all" else tuple(cells) if isinstance(cells, (tuple, list)) else (cells,)
    unknown = [name for name in names if name not in _LAYER_OF]
    if unknown or not names:
        raise ValueError(f"cells must be names from {list(CELL_NAMES)} or 'all', got {cells!r}")
    dtype = _run_options(dtype, seq_len, hidden, input_size, batch)
    reports = []
    for name in names:
        rng = np.random.default_rng(seed)
        layer, options = _LAYER_OF[name]
        module = layer(input_size, hidden, dtype=dtype, **options)
        bound = 1.0 / np.sqrt(hidden)
        module.load_state_dict({key: rng.uniform(-bound, bound, value.shape)
                                for key, value in module.state_dict().items()})
        x, drawn = _draw_input(rng, seq_len, batch, input_size, dtype)
        parts = 2 if layer is nn.LSTM else 1
        state = [rng.standard_normal((1, batch, hidden)).astype(dtype) for _ in range(parts)]
        reports.append(crosscheck(module, x, state_of(state), drawn if lengths is None else lengths, loss=loss,
                                  samples=samples, seed=seed))
    failed = [name for name, report in zip(names, reports) if not report.ok]
    verdict = (f"all {len(reports)} cross-check{'s' * (len(reports) > 1)} OK" if not failed
               else f"FAILED: {', '.join(failed)} ({len(failed)} of {len(reports)})")
    return "\n\n".join(map(str, reports)) + "\n\n" + verdict, not failed


def run_user_check(cell, reference=None, dtype="float64", seq_len=8, hidden=6, input_size=5, batch=3, seed=0,
                   loss="sum", samples=24, lengths=None):
    """Cross-check a user's cell on random data; what ``tinygrad-rnn check --cell file.py:Name`` prints.

    cell       "path/to/file.py:ClassName" (see ``bptt.user_code``) or the nn.Cell subclass itself;
               built as ``ClassName(input_size, hidden)`` after ``manual_seed(seed)``, so with its own
               initialisation, and its parameters cast to ``dtype`` when they come out in another
               float dtype; checked as ``nn.Recurrent(cell)``
    reference  None (a two-way check: autograd vs finite differences), "path/to/file.py:Name" (a
               class, instantiated with no arguments, or an object with step_forward /
               step_backward), or such a class or object itself: a three-way check

    x (T, N, D), the lengths (a full row first and a short one last, unless ``lengths`` are
    given) and an initial state of the shapes of the cell's ``init_state`` (standard normal) are
    drawn from ``seed``. Returns (text, ok) like ``run_check``. Anything wrong with the files or
    what they define, and any exception that comes out of the user's cell or reference while the
    check runs, is a ``user_code.UserCodeError`` (a ValueError) saying whose code and what.
    """
    dtype = _run_options(dtype, seq_len, hidden, input_size, batch)
    cache = {}  # one file named by both cell and reference is imported once
    if isinstance(cell, str):
        cls, cell_path = user_code.load_cell_class(cell, cache)
    elif isinstance(cell, type) and issubclass(cell, nn.Cell):
        cls, cell_path = cell, _source_file(cell)
    else:
        raise TypeError(f"cell must be 'path/to/file.py:ClassName' or an nn.Cell subclass, got {cell!r}")
    reference_path = None
    if isinstance(reference, str):
        reference, reference_path = user_code.load_reference(reference, cache)
    elif isinstance(reference, type):
        reference, reference_path = reference(), _source_file(reference)
    elif reference is not None:
        reference_path = _source_file(type(reference))
    reference_name = None if reference is None else getattr(reference, "__name__", type(reference).__name__)
    manual_seed(seed)
    built = user_code.build_cell(cls, cell_path, input_size, hidden, dtype)
    rng = np.random.default_rng(seed)
    try:
        module = nn.Recurrent(built)
        x, drawn = _draw_input(rng, seq_len, batch, input_size, dtype)
        with no_grad():
            shapes = [part.shape for part in state_parts(built.init_state(batch))]
        state = state_of([rng.standard_normal(shape).astype(dtype) for shape in shapes])
        report = crosscheck(module, x, state, drawn if lengths is None else lengths, loss=loss, samples=samples,
                            seed=seed, reference=reference)
    except Exception as error:
        blame = user_code.blamed(error, cls.__name__, cell_path, reference_name, reference_path)
        if blame is None:
            raise
        raise blame from error
    how = ("two-way: autograd vs finite differences; --reference FILE.py:NAME adds yours" if reference is None
           else f"three-way against {reference_name}")
    verdict = f"{'cross-check OK' if report.ok else 'FAILED'}: {cls.__name__} from {cell_path} ({how})"
    return f"{report}\n\n{verdict}", report.ok


def _run_options(dtype, seq_len, hidden, input_size, batch):
    """The dtype as np.dtype (float32 or float64) once the sizes are checked; a clear error otherwise."""
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from None
    if dtype not in TOLERANCES:
        raise TypeError(f"dtype must be float32 or float64, got {dtype}")
    sizes = {"seq_len": seq_len, "hidden": hidden, "input_size": input_size, "batch": batch}
    bad = {key: value for key, value in sizes.items()
           if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1}
    if bad:
        raise ValueError(f"sizes must be positive ints, got {bad}")
    return dtype


def _draw_input(rng, seq_len, batch, input_size, dtype):
    """x (T, N, D) standard normal and lengths with a full row first and a short one (about T/3) last."""
    x = rng.standard_normal((seq_len, batch, input_size)).astype(dtype)
    lengths = rng.integers(1, seq_len + 1, size=batch)
    lengths[0] = seq_len
    if batch > 1:
        lengths[-1] = max(1, seq_len // 3)
    return x, lengths


def _source_file(cls):
    try:
        return inspect.getsourcefile(cls) or "?"
    except TypeError:
        return "?"
