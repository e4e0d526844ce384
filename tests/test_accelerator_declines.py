"""Steps the accelerator must not replay as if they were the same every time, and what it must keep.

Each case was a silently wrong gradient or value with the accelerator on (found in review): the
loop's backward ran the second recording's program on the first recording's values although the two
differed in which values needed a gradient; a state whose parts have different dtypes was cast to
the first part's; a hook or ``retain_grad`` inside the step was dropped. Each test compares the
accelerated layer with the plain core (``tr.fast(False)``), which runs every step op by op.
"""
import numpy as np
import pytest

import tinygrad_rnn as tr
from tinygrad_rnn import nn
from tinygrad_rnn.bptt.sequence import state_parts

pytestmark = pytest.mark.usefixtures("accelerator_on")


class ShiftCell(nn.Cell):
    """State (h (N, 3), k (N, 1)): h' = tanh(x W^T) + h + k, k' = 0 * sum(x). After step 0, k no longer
    depends on anything that needs a gradient: the two recordings differ in what needs one."""

    hidden_size = 3

    def __init__(self):
        super().__init__()
        self.W = nn.Parameter(np.random.default_rng(1).standard_normal((3, 3)))

    def init_state(self, batch):
        return tr.Tensor(np.zeros((batch, 3))), tr.Tensor(np.ones((batch, 1)))

    def forward(self, x, state):
        h, k = state
        w = tr.ops.linear(x, self.W).tanh() + h
        return w + k.broadcast_to(w.shape), x.sum(axis=1, keepdims=True) * 0.0


class OffsetCell(nn.Cell):
    """h' = tanh(x + h + e), e a Tensor that requires grad but is not a registered Parameter."""

    hidden_size = 3

    def __init__(self, e):
        super().__init__()
        object.__setattr__(self, "e", e)

    def init_state(self, batch):
        return tr.Tensor(np.zeros((batch, 3)))

    def forward(self, x, h):
        return (x + h + self.e).tanh()


class MixedPrecisionCell(nn.Cell):
    """State (h float32 (N, 3), c float64 (N, 3)): h' = tanh(x + h), c' = c + 1e-9 (lost in float32)."""

    hidden_size = 3

    def init_state(self, batch):
        return tr.Tensor(np.zeros((batch, 3), np.float32)), tr.Tensor(np.zeros((batch, 3), np.float64))

    def forward(self, x, state):
        h, c = state
        return (x + h).tanh(), c + 1e-9


class HookedRNNCell(nn.RNNCell):
    """An RNN cell that clips the gradient of each new state to [-0.01, 0.01] with a hook."""

    def step(self, projected, h):
        new = super().step(projected, h)
        new.register_hook(lambda g: np.clip(g, -0.01, 0.01))
        return new


def both_ways(make_module, x, state=None, loss=lambda out, final: (out * out).sum()):
    """(outputs and final state parts, gradients of the leaves ``make_module`` names) with the
    accelerator on, then off; ``make_module() -> (module, leaves)`` runs after the same seed both times."""
    results = []
    for on in (True, False):
        tr.manual_seed(0)
        module, leaves = make_module()
        with tr.fast(on):
            out, final = module(x, state)
            loss(out, final).backward()
        results.append(([out.data, *(p.data for p in state_parts(final))], [leaf.grad for leaf in leaves]))
    return results


def assert_same(results):
    (values, grads), (core_values, core_grads) = results
    for mine, theirs in zip(values + grads, core_values + core_grads):
        assert mine.dtype == theirs.dtype
        np.testing.assert_allclose(mine, theirs, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("steps", [3, 6])
def test_recordings_that_differ_in_what_needs_a_gradient_give_the_core_gradient(steps):
    x = tr.Tensor(np.random.default_rng(0).standard_normal((steps, 2, 3)))

    def make():
        cell = ShiftCell()
        return nn.Recurrent(cell), [cell.W]
    assert_same(both_ways(make, x))


def test_a_tensor_that_requires_grad_outside_the_parameters_gets_the_core_gradient():
    x = tr.Tensor(np.random.default_rng(0).standard_normal((5, 2, 3)))

    def make():
        e = tr.Tensor(np.array([0.1, -0.2, 0.3]), requires_grad=True)
        return nn.Recurrent(OffsetCell(e)), [e]
    assert_same(both_ways(make, x))


def test_state_parts_keep_their_own_dtypes():
    x = tr.Tensor(np.random.default_rng(0).standard_normal((6, 2, 3)).astype(np.float32))
    with tr.fast(True):
        _, (h, c) = nn.Recurrent(MixedPrecisionCell())(x)
    assert (h.dtype, c.dtype) == (np.float32, np.float64)
    np.testing.assert_allclose(c.data, 6e-9, rtol=1e-6)


def test_a_hook_inside_the_step_acts_as_on_the_core():
    x = tr.Tensor(np.random.default_rng(0).standard_normal((6, 2, 3)) * 3)
    hooked = both_ways(lambda: (nn.Recurrent(cell := HookedRNNCell(3, 4, dtype=np.float64)), list(cell.parameters())), x)
    assert_same(hooked)
    plain = both_ways(lambda: (nn.Recurrent(cell := nn.RNNCell(3, 4, dtype=np.float64)), list(cell.parameters())), x)
    np.testing.assert_array_equal(hooked[1][0][0], plain[1][0][0])  # the same weights and outputs
    assert not np.allclose(hooked[1][1][1], plain[1][1][1])  # but weight_hh's gradient was clipped step by step


class RetainingRNNCell(nn.RNNCell):
    """An RNN cell that keeps the gradient of every new state (``retain_grad``) and lists the states."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        object.__setattr__(self, "states", [])

    def step(self, projected, h):
        new = super().step(projected, h)
        new.retain_grad()
        self.states.append(new)
        return new


def test_retain_grad_inside_the_step_keeps_every_steps_gradient_as_on_the_core():
    x = tr.Tensor(np.random.default_rng(2).standard_normal((5, 2, 3)))
    kept = {}
    for on in (True, False):
        tr.manual_seed(0)
        cell = RetainingRNNCell(3, 4, dtype=np.float64)
        with tr.fast(on):
            (nn.Recurrent(cell)(x)[0] ** 2).sum().backward()
        kept[on] = [state.grad for state in cell.states]
    assert len(kept[True]) == len(kept[False]) == 5
    for mine, theirs in zip(kept[True], kept[False]):
        np.testing.assert_allclose(mine, theirs, rtol=1e-12, atol=1e-12)


def test_fast_as_a_decorator_is_reentrant():
    @tr.fast(False)
    def depth(n):
        return depth(n - 1) if n else tr.fast.enabled

    assert depth(3) is False
    assert tr.fast.enabled is True


class ParameterHookingCell(nn.RNNCell):
    """An RNN cell whose step halves weight_hh's gradient with a hook, registered anew at every step."""

    def step(self, projected, h):
        self.weight_hh.register_hook(lambda g: g * 0.5)
        return super().step(projected, h)


def test_a_hook_registered_on_a_parameter_inside_the_step_is_registered_at_every_step():
    x = tr.Tensor(np.random.default_rng(3).standard_normal((6, 2, 3)))
    results = both_ways(lambda: (nn.Recurrent(cell := ParameterHookingCell(3, 4, dtype=np.float64)),
                                 list(cell.parameters())), x)
    assert_same(results)


def test_a_list_state_stays_a_list():
    seen = {}

    class ListStateCell(nn.Cell):
        hidden_size = 2

        def init_state(self, batch):
            return [tr.Tensor(np.zeros((batch, 2))), tr.Tensor(np.zeros((batch, 2)))]

        def forward(self, x, state):
            seen.setdefault(tr.fast.enabled, set()).add(type(state))
            h, c = state
            return [(x + h).tanh(), c + h]

    x = tr.Tensor(np.random.default_rng(4).standard_normal((4, 1, 2)))
    for on in (True, False):
        with tr.fast(on):
            _, final = nn.Recurrent(ListStateCell())(x)
        assert type(final) is list
    assert seen == {True: {list}, False: {list}}
