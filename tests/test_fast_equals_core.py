"""The accelerator's promise, checked: every number it produces equals the plain core's.

Each example runs the same model, data and loss twice, once with the accelerator on
(``with tr.fast(True):``: the step recorded once and replayed, the loop one graph node, factored
weight gradients) and once on the plain core (``tr.fast(False)``, op by op), and asserts that the
outputs, the final states and the gradients of every trainable parameter, of the input x and of a
given initial state agree in float64 to 1e-12, relative: max|a - b| <= 1e-12 * max(1, max|b|).

Covered: ``nn.LSTM``, ``nn.GRU``, ``nn.RNN`` (tanh and relu) with 1-2 layers, one or two directions,
batch_first or not, bias or not, with and without ``lengths``, a default, given or given-and-learned
initial state, frozen parameters and an input that does or does not require grad; ``nn.Recurrent``
(forward or reverse) over the built-in cells and over both example cells (the MinimalGatedUnit of
examples/custom_cell.py and the one examples/derive_your_own.py uses); losses over the outputs and
the final state, the outputs only, or the final state only. T runs 1..6: for T <= 2 the accelerator
does not engage, and those numbers must be equal too.

Every comparison also counts the graph's "recurrent_loop" nodes: with the accelerator on, one per
layer and direction that needs a graph whenever T >= 3 and no ``lengths`` cut a row short; with it
off, none. So the suite cannot pass by never running the accelerator.
"""
import functools
import importlib.util
import os

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinygrad_rnn as tr
import tinygrad_rnn.nn as nn
from tinygrad_rnn.bptt.sequence import state_of, state_parts
from tinygrad_rnn.viz import graph_counts

TOLERANCE = 1e-12
EXAMPLES = os.path.join(os.path.dirname(__file__), os.pardir, "examples")


def load_example(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(EXAMPLES, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


custom_cell = load_example("custom_cell")
derive_your_own = load_example("derive_your_own")  # imports its own MinimalGatedUnit from custom_cell.py

LAYERS = {
    "lstm": nn.LSTM,
    "gru": nn.GRU,
    "rnn_tanh": functools.partial(nn.RNN, nonlinearity="tanh"),
    "rnn_relu": functools.partial(nn.RNN, nonlinearity="relu"),
}
# name -> make(input_size, hidden_size, bias) in float64 (the example cells have no bias option)
CELLS = {
    "lstm": lambda d, h, bias: nn.LSTMCell(d, h, bias=bias, dtype=np.float64),
    "gru": lambda d, h, bias: nn.GRUCell(d, h, bias=bias, dtype=np.float64),
    "rnn_tanh": lambda d, h, bias: nn.RNNCell(d, h, bias=bias, nonlinearity="tanh", dtype=np.float64),
    "rnn_relu": lambda d, h, bias: nn.RNNCell(d, h, bias=bias, nonlinearity="relu", dtype=np.float64),
    "custom_cell.MinimalGatedUnit": lambda d, h, bias: custom_cell.MinimalGatedUnit(d, h, dtype=np.float64),
    "derive_your_own.MinimalGatedUnit": lambda d, h, bias: derive_your_own.MinimalGatedUnit(d, h, dtype=np.float64),
}
LOSSES = ("outputs_and_state", "outputs", "state")


def run(module, x, hx, hx_grad, x_grad, lengths, loss_kind, seed):
    """module(x, hx, lengths) on fresh leaves made from the arrays ``x`` and ``hx`` (a list of state
    parts, or None for the default state), then the gradients of the loss.

    Loss: sum(outputs * R) and/or sum(part * S_part) over the final state's parts, R and S drawn
    from ``seed``. -> (named arrays: outputs, final parts, gradients of every trainable parameter,
    of x and of hx where they require grad; the number of "recurrent_loop" nodes in the graph).
    """
    rng = np.random.default_rng(seed)
    x = tr.Tensor(x.copy(), requires_grad=x_grad)
    hx = None if hx is None else [tr.Tensor(part.copy(), requires_grad=hx_grad) for part in hx]
    outputs, final = module(x, None if hx is None else state_of(hx), lengths=lengths)
    finals = state_parts(final)
    terms = [(outputs * rng.standard_normal(outputs.shape)).sum()]
    terms += [(part * rng.standard_normal(part.shape)).sum() for part in finals]
    loss = {"outputs_and_state": sum(terms[1:], terms[0]), "outputs": terms[0],
            "state": sum(terms[2:], terms[1])}[loss_kind]
    found = {"outputs": outputs.data, **{f"final[{k}]": part.data for k, part in enumerate(finals)}}
    targets = {name: p for name, p in module.named_parameters() if p.requires_grad}
    if x_grad:
        targets["x"] = x
    if hx is not None and hx_grad:
        targets.update((f"hx[{k}]", part) for k, part in enumerate(hx))
    if targets:
        grads = tr.grad(loss, list(targets.values()), allow_unused=True)
        found.update((f"grad {name}", None if g is None else g.data) for name, g in zip(targets, grads))
    return found, graph_counts(loss).ops["recurrent_loop"]


def both_paths(*args):
    """``run`` with the accelerator on, then on the plain core (the decorator form of the switch)."""
    with tr.fast(True):
        fast = run(*args)
    core = tr.fast(False)(run)(*args)
    return fast, core


def assert_equal_numbers(fast, core):
    """The accelerator's arrays against the core's: the same names, shapes and dtypes, and values to
    TOLERANCE relative to max(1, max|core|)."""
    assert fast.keys() == core.keys()
    for name, b in core.items():
        a = fast[name]
        assert (a is None) == (b is None), f"{name}: accelerator {a}, core {b}"
        if b is None:
            continue
        assert a.shape == b.shape and a.dtype == b.dtype == np.float64, \
            f"{name}: {a.shape} {a.dtype} vs {b.shape} {b.dtype}"
        error, scale = np.abs(a - b).max(), max(1.0, np.abs(b).max())
        assert error <= TOLERANCE * scale, f"{name}: accelerator and core differ by {error:.3e} (scale {scale:.3e})"


def randomize(module, rng, frozen):
    """Parameters drawn U(-1, 1) (larger than the default init, so every term matters); each with
    its flag in ``frozen`` set stops requiring grad."""
    for p, freeze in zip(module.parameters(), frozen):
        p.data[...] = rng.uniform(-1.0, 1.0, size=p.shape)
        p.requires_grad_(not freeze)


def cut_short(lengths, steps):
    return lengths is not None and min(lengths) < steps


def stacked_loops(module, x_grad, hx_grad):
    """How many of a StackedRecurrent's loops need a graph node: a (layer, direction) whose cell has
    a trainable parameter, or whose input or initial state requires grad."""
    trainable = {name.rsplit("_l", 1)[1] for name, p in module.named_parameters() if p.requires_grad}
    count, upstream = 0, x_grad
    for layer in range(module.num_layers):
        suffixes = [f"{layer}", f"{layer}_reverse"][:1 + module.bidirectional]
        needs = [upstream or hx_grad or suffix in trainable for suffix in suffixes]
        count, upstream = count + sum(needs), any(needs)
    return count


settings_ = settings(max_examples=60, deadline=None)
hx_modes = st.sampled_from(["default", "given", "given_grad"])


@pytest.mark.parametrize("kind", sorted(LAYERS))
@settings_
@given(data=st.data(), steps=st.integers(1, 6), batch=st.integers(1, 3), input_size=st.integers(1, 4),
       hidden_size=st.integers(1, 4), num_layers=st.integers(1, 2), bidirectional=st.booleans(),
       batch_first=st.booleans(), bias=st.booleans(), use_lengths=st.booleans(), hx_mode=hx_modes,
       x_grad=st.booleans(), loss_kind=st.sampled_from(LOSSES), seed=st.integers(0, 2**32 - 1))
def test_layers_fast_equals_core(kind, data, steps, batch, input_size, hidden_size, num_layers, bidirectional,
                                 batch_first, bias, use_lengths, hx_mode, x_grad, loss_kind, seed):
    rng = np.random.default_rng(seed)
    module = LAYERS[kind](input_size, hidden_size, num_layers=num_layers, bias=bias, batch_first=batch_first,
                          bidirectional=bidirectional, dtype=np.float64)
    randomize(module, rng, data.draw(st.lists(st.booleans(), min_size=len(module.parameters()),
                                              max_size=len(module.parameters())), label="frozen"))
    x = rng.standard_normal((batch, steps, input_size) if batch_first else (steps, batch, input_size))
    hx = None
    if hx_mode != "default":
        shape = (num_layers * (1 + bidirectional), batch, hidden_size)
        hx = [rng.standard_normal(shape) for _ in range(2 if kind == "lstm" else 1)]
    lengths = data.draw(st.lists(st.integers(1, steps), min_size=batch, max_size=batch), label="lengths") \
        if use_lengths else None
    hx_grad = hx_mode == "given_grad"
    fast, core = both_paths(module, x, hx, hx_grad, x_grad, lengths, loss_kind, seed)
    assert_equal_numbers(fast[0], core[0])
    engaged = steps >= 3 and not cut_short(lengths, steps)
    assert fast[1] == (stacked_loops(module, x_grad, hx_grad) if engaged else 0)
    assert core[1] == 0


@pytest.mark.parametrize("kind", sorted(CELLS))
@settings_
@given(data=st.data(), steps=st.integers(1, 6), batch=st.integers(1, 3), input_size=st.integers(1, 4),
       hidden_size=st.integers(1, 4), reverse=st.booleans(), batch_first=st.booleans(), bias=st.booleans(),
       use_lengths=st.booleans(), hx_mode=hx_modes, x_grad=st.booleans(), loss_kind=st.sampled_from(LOSSES),
       seed=st.integers(0, 2**32 - 1))
def test_recurrent_fast_equals_core(kind, data, steps, batch, input_size, hidden_size, reverse, batch_first, bias,
                                    use_lengths, hx_mode, x_grad, loss_kind, seed):
    rng = np.random.default_rng(seed)
    module = nn.Recurrent(CELLS[kind](input_size, hidden_size, bias), batch_first=batch_first, reverse=reverse)
    randomize(module, rng, data.draw(st.lists(st.booleans(), min_size=len(module.parameters()),
                                              max_size=len(module.parameters())), label="frozen"))
    x = rng.standard_normal((batch, steps, input_size) if batch_first else (steps, batch, input_size))
    hx = None if hx_mode == "default" else \
        [rng.standard_normal((batch, hidden_size)) for _ in range(2 if kind == "lstm" else 1)]
    lengths = data.draw(st.lists(st.integers(1, steps), min_size=batch, max_size=batch), label="lengths") \
        if use_lengths else None
    hx_grad = hx_mode == "given_grad"
    fast, core = both_paths(module, x, hx, hx_grad, x_grad, lengths, loss_kind, seed)
    assert_equal_numbers(fast[0], core[0])
    needs_graph = x_grad or hx_grad or any(p.requires_grad for p in module.parameters())
    engaged = steps >= 3 and not cut_short(lengths, steps)
    assert fast[1] == int(engaged and needs_graph)
    assert core[1] == 0


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_the_accelerator_engages_in_every_layer_and_direction(kind):
    """A plain case, no hypothesis: 2 layers x 2 directions, T = 4, everything learned -> 4 loops."""
    rng = np.random.default_rng(1)
    module = LAYERS[kind](3, 4, num_layers=2, bidirectional=True, dtype=np.float64)
    randomize(module, rng, [False] * len(module.parameters()))
    hx = [rng.standard_normal((4, 2, 4)) for _ in range(2 if kind == "lstm" else 1)]
    fast, core = both_paths(module, rng.standard_normal((4, 2, 3)), hx, True, True, None, "outputs_and_state", 1)
    assert (fast[1], core[1]) == (4, 0)
    assert_equal_numbers(fast[0], core[0])


@pytest.mark.parametrize("lengths", [None, derive_your_own.LENGTHS])
@pytest.mark.parametrize("seed", [0, 1])
def test_derive_your_own_example_data(lengths, seed):
    """The example's own MinimalGatedUnit, data and initial state (T=6, N=3), with and without its lengths."""
    cell, x, h0 = derive_your_own.mgu_float64(seed)
    module = nn.Recurrent(cell)
    fast, core = both_paths(module, x, [h0], True, True, lengths, "outputs_and_state", seed)
    assert_equal_numbers(fast[0], core[0])
    assert (fast[1], core[1]) == (int(lengths is None), 0)
