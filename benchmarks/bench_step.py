"""Time one training step of a single-layer recurrent layer and print one table of ratios.

    python benchmarks/bench_step.py [--cells lstm rnn gru] [--sizes tiny medium large] [--repeats N]

The step: outputs = layer(x) over the whole sequence from a zero state, loss = sum(outputs * R)
for a fixed random R (so doutputs = R), then the gradient of the loss with respect to every
parameter and to x; float32 throughout. x (T, N, D), R and outputs (T, N, H).

Implementations, one row each (a row that cannot run says "unavailable: <reason>"):
    numpy baseline      benchmarks/baseline_numpy.py, expert hand-written NumPy (the 1.00x)
    tinygrad_rnn.nn     our autograd module tr.nn.LSTM / RNN / GRU
    tinygrad_rnn.bptt   our hand-derived references tr.bptt.lstm / rnn / gru
    torch.nn            torch.nn.LSTM / RNN / GRU, if torch is installed
    torch loop          the cell's equations over torch tensors in a Python loop, autograd

Every implementation starts from the same weights and data, and its gradients are compared
with the baseline's before it is timed: one that disagrees (relative error above 1e-4) gets a
warning row instead of a time, so a fast but wrong implementation never shows a good ratio.
Peak memory is measured with tracemalloc, which sees NumPy's arrays but not torch's.

Timing: the checked NumPy-based implementations of one (cell, size) are timed together in
--repeats interleaved rounds; each round times every one of them once (enough back-to-back calls
to last 50 ms or more), in an order rotated from round to round. "median ms" is the median over
rounds; "x baseline" is the median over rounds of (its time / the baseline's time in the same
round), a paired ratio, so load that drifts during the run hits both sides of each ratio alike.
torch's rows are timed the same way in a group of their own (interleaving the two libraries would
time their worker threads fighting over the cores), and their ratio is median / baseline median.

Reading the numbers: torch.nn.LSTM runs a fused oneDNN kernel (mkldnn_rnn_layer) on the CPU,
while torch.nn.RNN and GRU do not. OPENBLAS_CORETYPE, when set, chooses NumPy's OpenBLAS
kernels, and the first line shows it (measured on an AVX-512 AMD EPYC: with it set to Haswell,
AVX2 only, large products ran at about 255 GFLOP/s; unset, OpenBLAS chose SkylakeX, AVX-512,
and ran them at about 470). Other work on the machine inflates and scatters the times: the
load average is printed before and after.
"""

import argparse
import os
import platform
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # time this checkout's package

from _timing import (  # noqa: E402
    format_table, interleaved_times, load_report, median_paired_ratio, peak_memory)
from baseline_numpy import BASELINES, PARAMETER_NAMES, random_params  # noqa: E402

SIZES = {  # name: (N batch, T steps, D input, H hidden)
    "tiny": (1, 32, 32, 64),
    "medium": (32, 64, 128, 256),
    "large": (64, 128, 256, 512),
}
DEFAULT_REPEATS = {"tiny": 7, "medium": 5, "large": 3}
GRADIENT_TOLERANCE = 1e-4
LAYER_NAMES = {"lstm": "LSTM", "rnn": "RNN", "gru": "GRU"}
HEADERS = ("cell", "size (N,T,D,H)", "implementation", "median ms", "x baseline", "peak MiB", "note")


@dataclass
class Problem:
    """One step's data: x (T, N, D), params in PyTorch's layout, R (T, N, H); all float32."""

    cell: str
    N: int
    T: int
    D: int
    H: int
    x: np.ndarray
    params: dict
    R: np.ndarray


def make_problem(cell, N, T, D, H, seed=0):
    rng = np.random.default_rng(seed)
    return Problem(cell, N, T, D, H,
                   x=rng.standard_normal((T, N, D)).astype(np.float32),
                   params=random_params(cell, D, H, rng),
                   R=rng.standard_normal((T, N, H)).astype(np.float32))


# Each factory takes a Problem and returns step(), which runs one training step and returns the
# gradients as NumPy arrays {parameter name: grad, "x": dx}.

def baseline_step(problem):
    baseline = BASELINES[problem.cell](problem.N, problem.T, problem.D, problem.H)

    def step():
        _, grads, dx = baseline.step(problem.x, problem.params, problem.R)
        return {**grads, "x": dx}
    return step


def ours_module_step(problem):
    import tinygrad_rnn as tr
    layer = getattr(tr.nn, LAYER_NAMES[problem.cell])(problem.D, problem.H, dtype=np.float32)
    named = dict(layer.named_parameters())
    for name in PARAMETER_NAMES:
        named[f"{name}_l0"].data[...] = problem.params[name]
    weight = tr.Tensor(problem.R)

    def step():
        x = tr.Tensor(problem.x, requires_grad=True)
        outputs, _ = layer(x)
        loss = (outputs * weight).sum()
        layer.zero_grad()
        loss.backward()
        return {**{name: named[f"{name}_l0"].grad for name in PARAMETER_NAMES}, "x": x.grad}
    return step


def ours_bptt_step(problem):
    import tinygrad_rnn as tr
    reference = getattr(tr.bptt, problem.cell)

    def step():
        _, _, cache = reference.forward(problem.x, None, problem.params)
        grads = reference.backward(problem.R, None, cache)
        return {**grads.dparams, "x": grads.dxs}
    return step


def _torch():
    """torch, using every CPU this process may run on; ImportError when it is not installed."""
    import torch
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    return torch


def torch_module_step(problem):
    torch = _torch()
    layer = getattr(torch.nn, LAYER_NAMES[problem.cell])(problem.D, problem.H)
    with torch.no_grad():
        for name in PARAMETER_NAMES:
            getattr(layer, f"{name}_l0").copy_(torch.from_numpy(problem.params[name]))
    weight = torch.from_numpy(problem.R)

    def step():
        x = torch.from_numpy(problem.x).requires_grad_()
        outputs, _ = layer(x)
        loss = (outputs * weight).sum()
        layer.zero_grad()
        loss.backward()
        return {**{name: getattr(layer, f"{name}_l0").grad.numpy() for name in PARAMETER_NAMES},
                "x": x.grad.numpy()}
    return step


def _torch_cell(torch, cell):
    """The cell's equations over torch tensors: (x_t (N, D), state, weights) -> (h_t, new state)."""
    def rnn(x_t, h, w):
        h = torch.tanh(x_t @ w["weight_ih"].T + w["bias_ih"] + h @ w["weight_hh"].T + w["bias_hh"])
        return h, h

    def lstm(x_t, state, w):
        h, c = state
        gates = x_t @ w["weight_ih"].T + w["bias_ih"] + h @ w["weight_hh"].T + w["bias_hh"]
        i, f, g, o = gates.chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, (h, c)

    def gru(x_t, h, w):
        xr, xz, xn = (x_t @ w["weight_ih"].T + w["bias_ih"]).chunk(3, dim=1)
        hr, hz, hn = (h @ w["weight_hh"].T + w["bias_hh"]).chunk(3, dim=1)
        r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
        n = torch.tanh(xn + r * hn)
        h = (1 - z) * n + z * h
        return h, h

    return {"rnn": rnn, "lstm": lstm, "gru": gru}[cell]


def torch_loop_step(problem):
    torch = _torch()
    cell = _torch_cell(torch, problem.cell)
    weights = {name: torch.from_numpy(problem.params[name].copy()).requires_grad_()
               for name in PARAMETER_NAMES}
    weight = torch.from_numpy(problem.R)

    def step():
        x = torch.from_numpy(problem.x).requires_grad_()
        h = torch.zeros(problem.N, problem.H)
        state = (h, h) if problem.cell == "lstm" else h
        outputs = []
        for x_t in x.unbind(0):
            h, state = cell(x_t, state, weights)
            outputs.append(h)
        loss = (torch.stack(outputs) * weight).sum()
        for tensor in weights.values():
            tensor.grad = None
        loss.backward()
        return {**{name: tensor.grad.numpy() for name, tensor in weights.items()}, "x": x.grad.numpy()}
    return step


IMPLEMENTATIONS = {  # name: (factory, whether it runs on NumPy: shares its BLAS threads, tracemalloc sees its memory)
    "numpy baseline": (baseline_step, True),
    "tinygrad_rnn.nn": (ours_module_step, True),
    "tinygrad_rnn.bptt": (ours_bptt_step, True),
    "torch.nn": (torch_module_step, False),
    "torch loop": (torch_loop_step, False),
}


def gradient_disagreement(grads, reference):
    """The first gradient of ``grads`` that is missing or off ``reference`` by more than the
    tolerance (tr.rel_error_norm, ||a - b|| / (||a|| + ||b||)), as a message; None when all agree."""
    from tinygrad_rnn import rel_error_norm
    for name, expected in reference.items():
        got = grads.get(name)
        if got is None:
            return f"no gradient for {name}"
        if np.shape(got) != expected.shape:
            return f"gradient of {name} has shape {np.shape(got)}, expected {expected.shape}"
        error = rel_error_norm(got, expected)
        if not error <= GRADIENT_TOLERANCE:
            return f"gradient of {name} off the baseline's by relative error {error:.1e}"
    return None


def checked_step(name, problem, reference=None):
    """One implementation on one problem, ready to time: builds its step, runs it once, checks
    its gradients against ``reference`` (the baseline's, when given) and measures its peak memory.
    Returns a dict with the keys step (None when it cannot run or is wrong, so it is not timed),
    grads, peak_bytes (None when not measured) and note."""
    factory, memory_visible = IMPLEMENTATIONS[name]
    try:
        step = factory(problem)
        grads = {key: None if value is None else np.array(value) for key, value in step().items()}
    except Exception as error:  # a row that cannot run must not stop the others
        return {"step": None, "grads": None, "peak_bytes": None,
                "note": f"unavailable: {type(error).__name__}: {error}"}
    disagreement = None if reference is None else gradient_disagreement(grads, reference)
    if disagreement:
        return {"step": None, "grads": grads, "peak_bytes": None,
                "note": f"WARNING wrong gradients, not timed: {disagreement}"}
    if name == "numpy baseline":  # its workspace is allocated once, so count it with a step
        peak = peak_memory(lambda: factory(problem)())
    else:
        peak = peak_memory(step) if memory_visible else None
    return {"step": step, "grads": grads, "peak_bytes": peak, "note": ""}


def measure_against_baseline(problem, names, repeats):
    """The baseline and each of ``names``, checked against it by ``checked_step``, then every
    checked one timed together in ``repeats`` interleaved rounds (``interleaved_times``).

    Returns {name: result} with the baseline first, each result the ``checked_step`` dict plus
    "seconds", the median of its rounds, and "ratio": for the NumPy-based rows the median over
    rounds of its time over the baseline's in the same round (a paired ratio), for torch's rows
    its median over the baseline's; both None when it was not timed.

    The NumPy-based rows and torch's are timed in separate groups: each library leaves its worker
    threads spinning for a while after a call, so a torch call right before a NumPy one (or the
    other way round) would make both fight for the two cores and time that fight instead.
    """
    baseline = checked_step("numpy baseline", problem)
    results = {"numpy baseline": baseline}
    for name in names:
        if name != "numpy baseline":
            results[name] = checked_step(name, problem, baseline["grads"])
    times = {}
    for uses_numpy in (True, False):
        times.update(interleaved_times({name: result["step"] for name, result in results.items()
                                        if result["step"] is not None and IMPLEMENTATIONS[name][1] == uses_numpy},
                                       repeats))
    baseline_times = times.get("numpy baseline")
    for name, result in results.items():
        rounds = times.get(name)
        result["seconds"] = statistics.median(rounds) if rounds else None
        if not (rounds and baseline_times):
            result["ratio"] = None
        elif IMPLEMENTATIONS[name][1]:
            result["ratio"] = median_paired_ratio(rounds, baseline_times)
        else:
            result["ratio"] = result["seconds"] / statistics.median(baseline_times)
    return results


def bench_rows(cell, size, repeats):
    """The table rows of every implementation for one cell at one size."""
    N, T, D, H = SIZES[size]
    results = measure_against_baseline(make_problem(cell, N, T, D, H), IMPLEMENTATIONS, repeats)
    return [(cell, f"{size} ({N},{T},{D},{H})", name,
             "-" if result["seconds"] is None else f"{result['seconds'] * 1e3:.3f}",
             "-" if result["ratio"] is None else f"{result['ratio']:.2f}x",
             "-" if result["peak_bytes"] is None else f"{result['peak_bytes'] / 2**20:.2f}",
             result["note"])
            for name, result in results.items()]


def machine_summary():
    try:
        torch = _torch()
        torch_text = f"torch {torch.__version__} ({torch.get_num_threads()} threads)"
    except ImportError:
        torch_text = "torch not installed"
    blas_core = os.environ.get("OPENBLAS_CORETYPE")
    return (f"python {platform.python_version()}, numpy {np.__version__}, {torch_text}, "
            f"{len(os.sched_getaffinity(0))} CPUs ({platform.machine()})"
            + (f", OPENBLAS_CORETYPE={blas_core}" if blas_core else ""))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cells", nargs="+", choices=list(LAYER_NAMES), default=list(LAYER_NAMES))
    parser.add_argument("--sizes", nargs="+", choices=list(SIZES), default=list(SIZES))
    parser.add_argument("--repeats", type=int, default=None,
                        help="interleaved timing rounds per (cell, size) (default: %s)" % ", ".join(
                            f"{size} {count}" for size, count in DEFAULT_REPEATS.items()))
    args = parser.parse_args(argv)
    if args.repeats is not None and args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    print(machine_summary())
    print(load_report("before"))
    rows = []
    for cell in args.cells:
        for size in args.sizes:
            rows += bench_rows(cell, size, args.repeats or DEFAULT_REPEATS[size])
    print(format_table(HEADERS, rows))
    print("Each (cell, size): the NumPy-based rows timed together in interleaved rounds (one measurement "
          "of each per round, order rotated), torch's rows likewise in a group of their own. median ms: "
          "median over rounds. x baseline: median over rounds of (its time / the NumPy baseline's in the "
          "same round) for NumPy-based rows, median / the baseline's median for torch's; lower is faster. "
          "peak MiB: tracemalloc peak of one step (the baseline's includes allocating its reusable workspace).")
    print(load_report("after"))


if __name__ == "__main__":
    main()
