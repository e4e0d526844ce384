"""A backward walk that stops part-way leaves nothing behind that changes a later one.

A walk can stop early three ways: a hook raises, the user presses Ctrl-C (KeyboardInterrupt), or a
backward refuses to run (``tr.grad(..., create_graph=True)`` through a replayed recurrent layer).
After any of them, the next backward, on the same forward graph with a new loss or on a new
forward, must give what it gives when nothing was interrupted. The independent computation is the
same layer unrolled op by op (``nn.replay(False)``) with no interruption at all.

Shapes: T steps, N batch, D input size, H hidden size; float64.
"""
import functools

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinygrad_rnn as tr
import tinygrad_rnn.nn as nn

KINDS = {
    "rnn": functools.partial(nn.RNN, nonlinearity="tanh"),
    "lstm": nn.LSTM,
    "gru": nn.GRU,
}
TOLERANCE = 1e-12


class Interrupted(Exception):
    """What the raising hook raises (or KeyboardInterrupt, as Ctrl-C does)."""


def gradients(module):
    return {name: np.array(p.grad) for name, p in module.named_parameters()}


def clean_gradients(module, x, loss_of):
    """The parameters' gradients of ``loss_of(output, final parts)``, op by op, never interrupted."""
    module.zero_grad()
    with nn.replay(False):
        output, final = module(tr.Tensor(x))
    loss_of(output, final if isinstance(final, tuple) else (final,)).backward()
    return gradients(module)


def assert_equal_gradients(got, want):
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=TOLERANCE, atol=TOLERANCE, err_msg=name)


def interrupt(how, module, output, final):
    """Start a backward through ``module``'s graph and stop it part-way, ``how``:
    "hook" (a hook on the outputs raises after the final state's gradient has been handed on),
    "ctrl-c" (KeyboardInterrupt from the same place), or "refused" (tr.grad with create_graph)."""
    loss = output.sum() + sum((part * (k + 2)).sum() for k, part in enumerate(final))
    if how == "refused":
        with pytest.raises(RuntimeError, match="create_graph"):
            tr.grad(loss, list(module.parameters()), create_graph=True)
        return
    error = KeyboardInterrupt if how == "ctrl-c" else Interrupted

    def stop(grad):
        raise error("stopped here")

    handle = output.register_hook(stop)
    with pytest.raises(error):
        loss.backward()
    handle.remove()


@settings(max_examples=30, deadline=None)
@given(kind=st.sampled_from(sorted(KINDS)), how=st.sampled_from(["hook", "ctrl-c", "refused"]),
       steps=st.integers(3, 6), batch=st.integers(1, 3), next_loss=st.sampled_from(["outputs", "final", "both"]),
       same_graph=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_a_walk_stopped_part_way_leaves_nothing_for_the_next(kind, how, steps, batch, next_loss, same_graph, seed):
    rng = np.random.default_rng(seed)
    tr.manual_seed(seed % 1000)
    module = KINDS[kind](3, 4, dtype=np.float64)
    x = rng.standard_normal((steps, batch, 3))
    weights = rng.standard_normal((steps, batch, 4))

    def loss_of(output, final):
        total = (output * weights).sum() if next_loss != "final" else None
        if next_loss != "outputs":
            state_term = sum((part * part).sum() for part in final)
            total = state_term if total is None else total + state_term
        return total

    want = clean_gradients(module, x, loss_of)
    module.zero_grad()
    output, final = module(tr.Tensor(x))
    final = final if isinstance(final, tuple) else (final,)
    interrupt(how, module, output, final)
    module.zero_grad()
    if not same_graph:  # a fresh forward; else a new loss on the interrupted walk's graph
        output, final = module(tr.Tensor(x))
        final = final if isinstance(final, tuple) else (final,)
    loss_of(output, final).backward()
    assert_equal_gradients(gradients(module), want)


def test_the_walk_that_lost_89_on_a_small_lstm():
    """The reported case: a hook on the outputs raised after the final state's gradient had been
    handed to the replayed loop; a new loss on the outputs alone then carried that stale gradient."""
    rng = np.random.default_rng(0)
    tr.manual_seed(0)
    lstm = nn.LSTM(3, 4, dtype=np.float64)
    x = rng.standard_normal((6, 2, 3))
    want = clean_gradients(lstm, x, lambda output, final: (output * output).sum())
    lstm.zero_grad()
    output, (h, c) = lstm(tr.Tensor(x))
    interrupt("hook", lstm, output, (h, c))
    lstm.zero_grad()
    (output * output).sum().backward()
    assert_equal_gradients(gradients(lstm), want)


def test_scratch_exists_only_inside_a_walk():
    with pytest.raises(RuntimeError, match="inside a backward walk"):
        tr.tensor.walk_scratch()
    seen = []
    x = tr.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = x * 3
    y.register_hook(lambda g: seen.append(dict(tr.tensor.walk_scratch())))
    y.sum().backward()
    assert seen == [{}]
    with pytest.raises(RuntimeError, match="inside a backward walk"):
        tr.tensor.walk_scratch()


def test_an_interrupted_walk_restores_grad_mode_and_later_walks_are_exact():
    """A walk stopped inside a create_graph backward leaves grad mode as it was, and the graph
    can be walked again to the same gradients."""
    x = tr.Tensor(np.array([0.3, -0.7, 1.1]), requires_grad=True)
    y = (x.tanh() * x).sum()

    def stop(grad):
        raise KeyboardInterrupt

    handle = x.register_hook(stop)
    with pytest.raises(KeyboardInterrupt):
        y.backward(create_graph=True)
    handle.remove()
    x.grad = None
    z = x * 2
    assert z.requires_grad  # grad mode is back on
    y.backward()
    t = np.tanh(x.data)
    np.testing.assert_allclose(x.grad, t + x.data * (1 - t * t), rtol=1e-15)
