"""A backward walk that stops part-way leaves nothing behind that changes a later one.

A walk can stop early three ways: a hook raises, the user presses Ctrl-C (KeyboardInterrupt), or a
backward refuses to run (``tr.grad(..., create_graph=True)`` through the accelerator's loop node).
After any of them, the next backward, on the same forward graph with a new loss or on a new
forward, must give what it gives when nothing was interrupted. The independent computation is the
same layer unrolled op by op on the core (``tr.fast(False)``) with no interruption at all. The
walks under test run on the accelerator, turned on here with ``tr.fast(True)`` (CI also runs the
suite with ``TINYGRAD_RNN_FAST=0``, which would otherwise make both sides the core).

With the accelerator on, a recurrent layer is one "recurrent_loop" node whose output is one packed
array: the layer's outputs and its final state's parts are views of it. In a one-direction layer the
walk hands the loop the final state's gradient before it reaches the outputs, so a walk stopped at
the outputs has touched the packed array; a later loss on the outputs alone must not see that gradient.

Shapes: T steps, N batch, D input size (3), H hidden size (4); float64.
"""
import functools

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinygrad_rnn as tr
from tinygrad_rnn.bptt.sequence import state_parts
import tinygrad_rnn.nn as nn

KINDS = {
    "rnn": functools.partial(nn.RNN, nonlinearity="tanh"),
    "lstm": nn.LSTM,
    "gru": nn.GRU,
}
CELLS = {
    "rnn": functools.partial(nn.RNNCell, nonlinearity="tanh"),
    "lstm": nn.LSTMCell,
    "gru": nn.GRUCell,
}
TOLERANCE = 1e-12


class Interrupted(Exception):
    """What the raising hook raises (or KeyboardInterrupt, as Ctrl-C does)."""


def initial_state(kind, rng, batch, stacked=1):
    """An initial state (L*K = ``stacked``, N, H) for ``kind`` whose parts require grad (two for an LSTM)."""
    parts = tuple(tr.Tensor(rng.standard_normal((stacked, batch, 4)), requires_grad=True)
                  for _ in range(2 if kind == "lstm" else 1))
    return parts if kind == "lstm" else parts[0]


def fresh_leaves(x, state):
    """New leaves on the same arrays: the input, and the initial state (None stays None)."""
    x = tr.Tensor(x.data, requires_grad=x.requires_grad)
    if state is None:
        return x, None
    parts = tuple(tr.Tensor(p.data, requires_grad=True) for p in state_parts(state))
    return x, parts if isinstance(state, tuple) else parts[0]


def gradients(module, x, state):
    """Every gradient the walk stored: the parameters', the input's, the initial state parts'."""
    found = {name: None if p.grad is None else np.array(p.grad) for name, p in module.named_parameters()}
    found["input"] = None if x.grad is None else np.array(x.grad)
    for k, part in enumerate(state_parts(state) if state is not None else ()):
        found[f"state {k}"] = None if part.grad is None else np.array(part.grad)
    return found


def clear(module, x, state):
    module.zero_grad()
    for leaf in (x, *(state_parts(state) if state is not None else ())):
        leaf.grad = None


def accelerated(module, x, state):
    """The forward with the accelerator on: -> (outputs, final state parts)."""
    with tr.fast(True):
        output, final = module(x, state)
    return output, state_parts(final)


def clean_gradients(module, x, state, loss_of):
    """The gradients of ``loss_of(output, final parts)``, op by op on the core, never interrupted."""
    x, state = fresh_leaves(x, state)
    module.zero_grad()
    with tr.fast(False):
        output, final = module(x, state)
    assert not loops_reached(output), "tr.fast(False) must unroll the layer op by op"
    loss_of(output, state_parts(final)).backward()
    return gradients(module, x, state)


def assert_equal_gradients(got, want):
    assert got.keys() == want.keys()
    for name in want:
        assert (got[name] is None) == (want[name] is None), name
        if want[name] is not None:
            np.testing.assert_allclose(got[name], want[name], rtol=TOLERANCE, atol=TOLERANCE, err_msg=name)


def nodes_of(t):
    """Every node in the graph of ``t``."""
    seen, pending = set(), [t._node]
    while pending:
        node = pending.pop()
        if node is not None and node not in seen:
            seen.add(node)
            pending.extend(node.inputs)
    return seen


def loops_reached(t):
    """The "recurrent_loop" nodes in the graph of ``t``."""
    return {node for node in nodes_of(t) if node.op is not None and node.op.name == "recurrent_loop"}


def views_of(t, loop):
    """The nodes in the graph of ``t`` that read ``loop``'s packed array directly (its getitem views)."""
    return {node for node in nodes_of(t) if any(p is loop for p in node.inputs)}


def interrupt(how, module, output, final, where="outputs"):
    """Start a backward through ``module``'s graph and stop it part-way, ``how``:
    "hook" (a hook raises), "ctrl-c" (KeyboardInterrupt from the same place), or "refused" (tr.grad
    with create_graph, which the loop node refuses). ``where`` the hook is: "outputs" (on the
    layer's outputs: the final state's gradient has been handed on, not yet the outputs') or
    "weights" (on a parameter: the loop node's backward has run)."""
    loss = output.sum() + sum((part * (k + 2)).sum() for k, part in enumerate(final))
    if how == "refused":
        with pytest.raises(RuntimeError, match=r"create_graph=True\) through a replayed recurrent layer"):
            tr.grad(loss, list(module.parameters()), create_graph=True)
        assert tr.is_grad_enabled()
        return
    error = KeyboardInterrupt if how == "ctrl-c" else Interrupted
    reached = []

    def stop(grad):
        raise error("stopped here")

    watched = [part.register_hook(lambda g, k=k: reached.append(k)) for k, part in enumerate(final)]
    handle = (output if where == "outputs" else module.parameters()[0]).register_hook(stop)
    with pytest.raises(error):
        loss.backward()
    handle.remove()
    for h in watched:
        h.remove()
    assert sorted(reached) == list(range(len(final))), "the walk stopped before it touched the final state"
    assert tr.is_grad_enabled()


@settings(max_examples=40, deadline=None)
@given(kind=st.sampled_from(sorted(KINDS)), how=st.sampled_from(["hook", "ctrl-c", "refused"]),
       where=st.sampled_from(["outputs", "weights"]), steps=st.integers(3, 6), batch=st.integers(1, 3),
       next_loss=st.sampled_from(["outputs", "final", "both"]), same_graph=st.booleans(),
       input_needs_grad=st.booleans(), with_state=st.booleans(), bidirectional=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_a_walk_stopped_part_way_leaves_nothing_for_the_next(kind, how, where, steps, batch, next_loss, same_graph,
                                                             input_needs_grad, with_state, bidirectional, seed):
    rng = np.random.default_rng(seed)
    tr.manual_seed(seed % 1000)
    module = KINDS[kind](3, 4, bidirectional=bidirectional, dtype=np.float64)
    directions = 2 if bidirectional else 1
    x = tr.Tensor(rng.standard_normal((steps, batch, 3)), requires_grad=input_needs_grad)
    state = initial_state(kind, rng, batch, directions) if with_state else None
    weights = rng.standard_normal((steps, batch, 4 * directions))

    def loss_of(output, final):
        total = (output * weights).sum() if next_loss != "final" else None
        if next_loss != "outputs":
            state_term = sum((part * part).sum() for part in final)
            total = state_term if total is None else total + state_term
        return total

    want = clean_gradients(module, x, state, loss_of)
    x, state = fresh_leaves(x, state)
    module.zero_grad()
    output, final = accelerated(module, x, state)
    assert len(loops_reached(output)) == directions  # the accelerator ran each direction as one node
    interrupt(how, module, output, final, where)
    clear(module, x, state)
    if not same_graph:  # a fresh forward; else a new loss on the interrupted walk's graph
        x, state = fresh_leaves(x, state)
        output, final = accelerated(module, x, state)
    loss_of(output, final).backward()
    assert_equal_gradients(gradients(module, x, state), want)


@pytest.mark.parametrize("how", ["hook", "ctrl-c"])
@pytest.mark.parametrize("form", ["layer", "recurrent"])
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_loss_on_the_outputs_alone_after_a_walk_that_touched_the_packed_final_state(kind, form, how):
    """The packed-output case: the outputs and the final state are views of one loop node's array.
    A walk stopped at the outputs has handed the loop the final state's gradient; a new loss on the
    same graph's outputs alone must give the op-by-op gradients of that loss, with no trace of it."""
    rng = np.random.default_rng(7)
    tr.manual_seed(7)
    module = KINDS[kind](3, 4, dtype=np.float64) if form == "layer" else \
        nn.Recurrent(CELLS[kind](3, 4, dtype=np.float64))
    x = tr.Tensor(rng.standard_normal((5, 2, 3)), requires_grad=True)
    state = initial_state(kind, rng, 2) if form == "layer" else None
    weights = rng.standard_normal((5, 2, 4))

    def outputs_alone(output, final):
        return (output * weights).sum()

    want = clean_gradients(module, x, state, outputs_alone)
    output, final = accelerated(module, x, state)
    (loop,) = loops_reached(output)
    assert all(loops_reached(part) == {loop} for part in final)  # one packed array behind all of them
    # the walk visits the last-made node first: the final state's views of the packed array, made
    # after the outputs' view (if any: an RNN's or GRU's outputs are the packed array itself), hand
    # the loop their gradient before the outputs' hook stops the walk
    output_views = views_of(output, loop)
    final_views = set().union(*(views_of(part, loop) for part in final))
    assert len(output_views) == (kind == "lstm") and len(final_views) == len(final)
    assert all(v.seq > w.seq for v in final_views for w in output_views)
    interrupt(how, module, output, final, "outputs")
    clear(module, x, state)
    outputs_alone(output, final).backward()
    assert_equal_gradients(gradients(module, x, state), want)


def test_the_walk_that_lost_89_on_a_small_lstm():
    """The reported case: a hook on the outputs raised after the final state's gradient had been
    handed to the accelerated loop; a new loss on the outputs alone then carried that stale gradient."""
    rng = np.random.default_rng(0)
    tr.manual_seed(0)
    lstm = nn.LSTM(3, 4, dtype=np.float64)
    x = tr.Tensor(rng.standard_normal((6, 2, 3)))
    want = clean_gradients(lstm, x, None, lambda output, final: (output * output).sum())
    lstm.zero_grad()
    output, (h, c) = accelerated(lstm, x, None)
    assert len(loops_reached(output)) == 1
    interrupt("hook", lstm, output, (h, c))
    lstm.zero_grad()
    (output * output).sum().backward()
    assert_equal_gradients(gradients(lstm, x, None), want)


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
    assert tr.is_grad_enabled()
    x.grad = None
    z = x * 2
    assert z.requires_grad  # grad mode is back on
    y.backward()
    t = np.tanh(x.data)
    np.testing.assert_allclose(x.grad, t + x.data * (1 - t * t), rtol=1e-15)
