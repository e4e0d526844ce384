"""RNNCell, LSTMCell and GRUCell against the hand-derived references (tinygrad_rnn.bptt).

One step of each cell, in float64: the new state and the gradients of the loss
    L = sum(h' * G_h) (+ sum(c' * G_c) for the LSTM)
with respect to x, the state and every parameter, compared with the reference's
step_forward / step_backward on the same weights (relative error < 1e-10), with and without
bias, batched (N, D) and unbatched (D,). Then finite differences (tr.gradcheck) and bad input.
"""
import functools

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinygrad_rnn as tr
import tinygrad_rnn.nn as nn
from tinygrad_rnn.bptt import gru, lstm, rnn
from tinygrad_rnn.bptt.sequence import state_of, state_parts

FAST = settings(max_examples=10, deadline=None)
TOLERANCE = 1e-10

# name -> (cell class and keywords, reference step_forward, reference step_backward, gates, state parts)
CELLS = {
    "rnn_tanh": (functools.partial(nn.RNNCell, nonlinearity="tanh"),
                 functools.partial(rnn.step_forward, nonlinearity="tanh"), rnn.step_backward, 1, 1),
    "rnn_relu": (functools.partial(nn.RNNCell, nonlinearity="relu"),
                 functools.partial(rnn.step_forward, nonlinearity="relu"), rnn.step_backward, 1, 1),
    "rnn_sigmoid": (functools.partial(nn.RNNCell, nonlinearity="sigmoid"),
                    functools.partial(rnn.step_forward, nonlinearity="sigmoid"), rnn.step_backward, 1, 1),
    "lstm": (nn.LSTMCell, lstm.step_forward, lstm.step_backward, 4, 2),
    "gru": (nn.GRUCell, gru.step_forward, gru.step_backward, 3, 1),
}


def assert_close(ours, reference, what):
    error = tr.rel_error(ours, reference)
    assert error < TOLERANCE, f"{what}: relative error {error:.2e}"


@FAST
@given(kind=st.sampled_from(sorted(CELLS)), batch=st.integers(1, 3), input_size=st.integers(1, 4),
       hidden_size=st.integers(1, 4), bias=st.booleans(), unbatched=st.booleans(), given_state=st.booleans(),
       seed=st.integers(0, 2**31 - 1))
def test_step_and_every_gradient_match_the_reference(kind, batch, input_size, hidden_size, bias, unbatched,
                                                      given_state, seed):
    make, step_forward, step_backward, gates, n_parts = CELLS[kind]
    batch = 1 if unbatched else batch  # the reference sees an unbatched step as a batch of one
    rng = np.random.default_rng(seed)
    cell = make(input_size, hidden_size, bias=bias, dtype=np.float64)
    params = {name: p.data for name, p in cell.named_parameters()}
    assert set(params) == ({"weight_ih", "weight_hh", "bias_ih", "bias_hh"} if bias else {"weight_ih", "weight_hh"})
    x = rng.standard_normal((batch, input_size))
    state = tuple(rng.standard_normal((batch, hidden_size)) for _ in range(n_parts))
    upstream = tuple(rng.standard_normal((batch, hidden_size)) for _ in range(n_parts))

    expected, cache = step_forward(x, state_of(state) if given_state else None, params)
    dx, dstate, dparams = step_backward(state_of(upstream), cache)

    squeeze = (lambda a: a[0]) if unbatched else (lambda a: a)
    x_t = tr.Tensor(squeeze(x), requires_grad=True)
    state_t = tuple(tr.Tensor(squeeze(s), requires_grad=True) for s in state)
    new = state_parts(cell(x_t, state_of(state_t) if given_state else None))
    assert len(new) == n_parts
    loss = sum((piece * squeeze(g)).sum() for piece, g in zip(new, upstream))
    loss.backward()

    for piece, reference in zip(new, state_parts(expected)):
        assert piece.shape == squeeze(reference).shape
        assert_close(piece.data, squeeze(reference), f"{kind} new state")
    assert_close(x_t.grad, squeeze(dx), f"{kind} dx")
    if given_state:
        for piece, reference in zip(state_t, state_parts(dstate)):
            assert_close(piece.grad, squeeze(reference), f"{kind} dstate")
    for name, p in cell.named_parameters():
        assert_close(p.grad, dparams[name], f"{kind} d{name}")


@pytest.mark.parametrize("kind", sorted(CELLS))
@pytest.mark.parametrize("bias", [True, False])
def test_step_gradcheck(kind, bias):
    make, _, _, _, n_parts = CELLS[kind]
    rng = np.random.default_rng(1)
    cell = make(3, 2, bias=bias, dtype=np.float64)
    x = tr.Tensor(rng.standard_normal((2, 3)), requires_grad=True)
    state = tuple(tr.Tensor(rng.standard_normal((2, 2)), requires_grad=True) for _ in range(n_parts))
    count = len(state)

    def step(x, *rest):
        return state_parts(cell(x, state_of(rest[:count])))

    assert tr.gradcheck(step, (x,) + state + tuple(cell.parameters()))


@pytest.mark.parametrize("kind", sorted(CELLS))
def test_default_state_is_zeros_of_the_parameters_dtype(kind):
    make, _, _, _, n_parts = CELLS[kind]
    cell = make(3, 2, dtype=np.float64)
    state = state_parts(cell.init_state(4))
    assert len(state) == n_parts
    for piece in state:
        assert piece.shape == (4, 2) and piece.dtype == np.float64 and not piece.data.any()
    x = tr.Tensor(np.ones((4, 3)))
    for a, b in zip(state_parts(cell(x)), state_parts(cell(x, state_of(state)))):
        np.testing.assert_array_equal(a.data, b.data)


@pytest.mark.parametrize("kind", sorted(CELLS))
def test_parameter_shapes_follow_pytorch(kind):
    make, _, _, gates, _ = CELLS[kind]
    cell = make(5, 3)
    assert {name: p.shape for name, p in cell.named_parameters()} == {
        "weight_ih": (gates * 3, 5), "weight_hh": (gates * 3, 3), "bias_ih": (gates * 3,), "bias_hh": (gates * 3,)}
    assert cell.bias_ih is not None and make(5, 3, bias=False).bias_ih is None


# ============================================================================ bad input
@pytest.mark.parametrize("kind", sorted(CELLS))
def test_wrong_input_rank_or_size_names_what_was_expected(kind):
    cell = CELLS[kind][0](3, 2)
    with pytest.raises(ValueError, match=r"input must be \(N, D\) or \(D,\), got shape \(1, 2, 3\)"):
        cell(tr.Tensor(np.zeros((1, 2, 3))))
    with pytest.raises(ValueError, match=r"expected input size 3, got 4"):
        cell(tr.Tensor(np.zeros((2, 4))))
    with pytest.raises(ValueError, match=r"expected input size 3, got 4"):
        cell(tr.Tensor(np.zeros(4)))
    with pytest.raises(TypeError, match="must be a Tensor"):
        cell(np.zeros((2, 3)))


@pytest.mark.parametrize("kind", sorted(CELLS))
def test_state_of_the_wrong_shape_is_rejected(kind):
    make, _, _, _, n_parts = CELLS[kind]
    cell = make(3, 2)
    x = tr.Tensor(np.zeros((4, 3), dtype=np.float32))
    wrong = tr.Tensor(np.zeros((4, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"state has shapes .*\(4, 3\).*expected"):
        cell(x, state_of((wrong,) * n_parts))
    right = tr.Tensor(np.zeros((4, 2), dtype=np.float32))
    other_structure = (right, right) if n_parts == 1 else right
    with pytest.raises(ValueError, match="state has shapes"):
        cell(x, other_structure)


def test_sizes_and_nonlinearity_are_checked():
    with pytest.raises(ValueError, match="nonlinearity must be one of"):
        nn.RNNCell(3, 2, nonlinearity="softplus")
    with pytest.raises(ValueError, match="sizes must be positive"):
        nn.GRUCell(0, 2)


def test_a_custom_cell_returning_another_state_structure_is_named():
    class Doubling(nn.Cell):
        """Its state is h (N, H), but forward returns a pair."""

        def __init__(self):
            super().__init__()
            self.hidden_size = 2
            self.weight = nn.Parameter(np.ones((2, 2)))

        def forward(self, x, h):
            h = (x @ self.weight).tanh()
            return h, h

    with pytest.raises(ValueError, match=r"Doubling: forward\(\) returned a state that has shapes"):
        Doubling()(tr.Tensor(np.ones((3, 2))))
    with pytest.raises(ValueError, match=r"forward\(\) returned a state"):
        nn.Recurrent(Doubling())(tr.Tensor(np.ones((4, 3, 2))))


def test_a_cell_without_forward_says_what_to_define():
    class Empty(nn.Cell):
        hidden_size = 2

    with pytest.raises(NotImplementedError, match="must define forward"):
        Empty()(tr.Tensor(np.ones((1, 2))))
