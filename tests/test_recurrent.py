"""Recurrent, RNN, LSTM and GRU against a stack of the hand-derived references (tinygrad_rnn.bptt).

The independent computation is built here from the references' sequence forward / backward:
layer by layer and direction by direction, the reverse direction reading each row reversed
within its own length (a plain loop below), the directions' outputs side by side as the next
layer's input; the backward runs through the same references in the opposite order, summing
the two directions' input gradients. Everything is float64 and must agree to 1e-10 (relative):
outputs, h_n (and c_n), and the gradients of the input, of hx and of every parameter for

    L = sum(output * G) + sum(h_n * G_h) (+ sum(c_n * G_c))

in all combinations of layers, directions, batch_first, bias, given or default hx and lengths.
"""
import functools

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinygrad_rnn as tr
import tinygrad_rnn.nn as nn
from tinygrad_rnn.bptt import gru, lstm, rnn
from tinygrad_rnn.bptt.sequence import state_of, state_parts
from tinygrad_rnn.random import manual_seed

TOLERANCE = 1e-10
PARAM_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")

# name -> (layer class, cell class, reference forward, reference backward, state parts)
KINDS = {
    "rnn_tanh": (functools.partial(nn.RNN, nonlinearity="tanh"), functools.partial(nn.RNNCell, nonlinearity="tanh"),
                 functools.partial(rnn.forward, nonlinearity="tanh"), rnn.backward, 1),
    "rnn_relu": (functools.partial(nn.RNN, nonlinearity="relu"), functools.partial(nn.RNNCell, nonlinearity="relu"),
                 functools.partial(rnn.forward, nonlinearity="relu"), rnn.backward, 1),
    "lstm": (nn.LSTM, nn.LSTMCell, lstm.forward, lstm.backward, 2),
    "gru": (nn.GRU, nn.GRUCell, gru.forward, gru.backward, 1),
}


def assert_close(ours, reference, what):
    assert ours.shape == reference.shape, f"{what}: shape {ours.shape}, expected {reference.shape}"
    error = tr.rel_error(ours, reference)
    assert error < TOLERANCE, f"{what}: relative error {error:.2e}"


def reverse_within(a, lengths):
    """Row n's first lengths[n] steps of a (T, N, ...) in reverse order; the padding stays put."""
    out = a.copy()
    for n, length in enumerate(lengths):
        out[:length, n] = a[:length, n][::-1]
    return out


# ============================================================================ the reference stack
def reference_forward(forward, state_dict, xs, state0, num_layers, directions, lengths):
    """xs (T, N, D) time-major; state0 None or parts each (L*K, N, H); lengths None or (N,).

    Returns (output (T, N, K*H), final parts each (L*K, N, H), the references' caches).
    """
    full = np.full(xs.shape[1], xs.shape[0]) if lengths is None else lengths
    layer_input, finals, caches = xs, [], []
    for layer in range(num_layers):
        outputs = []
        for direction in range(directions):
            k = layer * directions + direction
            suffix = f"_l{layer}" + ("_reverse" if direction else "")
            params = {name: state_dict[name + suffix] for name in PARAM_NAMES if name + suffix in state_dict}
            start = None if state0 is None else state_of(tuple(p[k] for p in state0))
            seen = reverse_within(layer_input, full) if direction else layer_input
            out, final, cache = forward(seen, start, params, lengths)
            outputs.append(reverse_within(out, full) if direction else out)
            finals.append(state_parts(final))
            caches.append(cache)
        layer_input = np.concatenate(outputs, axis=2)
    return layer_input, tuple(np.stack(p) for p in zip(*finals)), caches


def reference_backward(backward, caches, doutput, dfinal, num_layers, directions, lengths):
    """Backward of reference_forward: doutput (T, N, K*H), dfinal parts each (L*K, N, H).

    Returns (dxs (T, N, D), dstate0 parts each (L*K, N, H), {parameter name: gradient}).
    """
    full = np.full(doutput.shape[1], doutput.shape[0]) if lengths is None else lengths
    hidden = doutput.shape[2] // directions
    dstate0, dparams = [None] * len(caches), {}
    for layer in reversed(range(num_layers)):
        dinput = 0.0
        for direction in range(directions):
            k = layer * directions + direction
            suffix = f"_l{layer}" + ("_reverse" if direction else "")
            dout = doutput[:, :, direction * hidden:(direction + 1) * hidden]
            dout = reverse_within(dout, full) if direction else np.ascontiguousarray(dout)
            grads = backward(dout, state_of(tuple(p[k] for p in dfinal)), caches[k])
            dinput = dinput + (reverse_within(grads.dxs, full) if direction else grads.dxs)
            dstate0[k] = state_parts(grads.dstate0)
            dparams.update({name + suffix: g for name, g in grads.dparams.items() if g is not None})
        doutput = dinput
    return doutput, tuple(np.stack(p) for p in zip(*dstate0)), dparams


# ============================================================================ one problem, both ways
def check_against_reference(kind, num_layers, bidirectional, batch_first, bias, given_hx, steps, batch,
                            input_size, hidden_size, lengths, seed):
    make, _, forward, backward, n_parts = KINDS[kind]
    directions = 2 if bidirectional else 1
    rng = np.random.default_rng(seed)
    layer = make(input_size, hidden_size, num_layers=num_layers, bias=bias, batch_first=batch_first,
                 bidirectional=bidirectional, dtype=np.float64)
    state_dict = layer.state_dict()
    xs = rng.standard_normal((steps, batch, input_size))
    hx = tuple(rng.standard_normal((num_layers * directions, batch, hidden_size)) for _ in range(n_parts))
    doutput = rng.standard_normal((steps, batch, directions * hidden_size))
    dfinal = tuple(rng.standard_normal(h.shape) for h in hx)

    expected, expected_final, caches = reference_forward(forward, state_dict, xs, hx if given_hx else None,
                                                         num_layers, directions, lengths)
    dxs, dhx, dparams = reference_backward(backward, caches, doutput, dfinal, num_layers, directions, lengths)

    to_layout = (lambda a: a.transpose(1, 0, 2)) if batch_first else (lambda a: a)
    x_t = tr.Tensor(to_layout(xs).copy(), requires_grad=True)
    hx_t = tuple(tr.Tensor(h.copy(), requires_grad=True) for h in hx)
    output, final = layer(x_t, state_of(hx_t) if given_hx else None, lengths=lengths)
    final = state_parts(final)
    loss = (output * to_layout(doutput)).sum() + sum((f * g).sum() for f, g in zip(final, dfinal))
    loss.backward()

    assert_close(output.data, to_layout(expected), "output")
    for name, ours, reference in zip(("h_n", "c_n"), final, expected_final):
        assert_close(ours.data, reference, name)
    assert_close(x_t.grad, to_layout(dxs), "d input")
    if given_hx:
        for name, ours, reference in zip(("h_0", "c_0"), hx_t, dhx):
            assert_close(ours.grad, reference, f"d {name}")
    assert set(dict(layer.named_parameters())) == set(dparams)
    for name, p in layer.named_parameters():
        assert_close(p.grad, dparams[name], f"d {name}")
    return output, final


@st.composite
def sizes_and_lengths(draw, with_lengths):
    """(T, N, D, H, lengths, seed); lengths (N,) in 1..T (so 1 and all-full are both drawn) or None."""
    steps, batch = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    lengths = np.array(draw(st.lists(st.integers(1, steps), min_size=batch, max_size=batch))) if with_lengths else None
    return steps, batch, draw(st.integers(1, 3)), draw(st.integers(1, 3)), lengths, draw(st.integers(0, 2**31 - 1))


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["time_major", "batch_first"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("given_hx", [False, True], ids=["zero_hx", "given_hx"])
@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
@settings(max_examples=2, deadline=None)
@given(data=st.data())
def test_layers_match_the_reference_stack(kind, num_layers, bidirectional, batch_first, bias, given_hx,
                                          with_lengths, data):
    steps, batch, input_size, hidden_size, lengths, seed = data.draw(sizes_and_lengths(with_lengths))
    check_against_reference(kind, num_layers, bidirectional, batch_first, bias, given_hx, steps, batch,
                            input_size, hidden_size, lengths, seed)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_long_uneven_batch_with_lengths_one_and_full(kind):
    check_against_reference(kind, 2, True, False, True, True, steps=9, batch=5, input_size=4, hidden_size=3,
                            lengths=np.array([9, 1, 4, 9, 2]), seed=7)


# ============================================================================ Recurrent on its own
@settings(max_examples=25, deadline=None)
@given(kind=st.sampled_from(sorted(KINDS)), reverse=st.booleans(), batch_first=st.booleans(),
       given_state=st.booleans(), with_lengths=st.booleans(), data=st.data())
def test_recurrent_unrolls_a_cell_like_the_reference(kind, reverse, batch_first, given_state, with_lengths, data):
    _, make_cell, forward, backward, n_parts = KINDS[kind]
    steps, batch, input_size, hidden_size, lengths, seed = data.draw(sizes_and_lengths(with_lengths))
    rng = np.random.default_rng(seed)
    cell = make_cell(input_size, hidden_size, dtype=np.float64)
    run = nn.Recurrent(cell, batch_first=batch_first, reverse=reverse)
    assert [name for name, _ in run.named_parameters()] == [f"cell.{n}" for n in PARAM_NAMES]
    full = np.full(batch, steps) if lengths is None else lengths
    xs = rng.standard_normal((steps, batch, input_size))
    state = tuple(rng.standard_normal((batch, hidden_size)) for _ in range(n_parts))
    doutputs = rng.standard_normal((steps, batch, hidden_size))
    dfinal = tuple(rng.standard_normal((batch, hidden_size)) for _ in range(n_parts))

    flip = functools.partial(reverse_within, lengths=full) if reverse else (lambda a: a)
    params = {name: p.data for name, p in cell.named_parameters()}
    expected, expected_final, cache = forward(flip(xs), state_of(state) if given_state else None, params, lengths)
    grads = backward(flip(doutputs), state_of(dfinal), cache)

    to_layout = (lambda a: a.transpose(1, 0, 2)) if batch_first else (lambda a: a)
    x_t = tr.Tensor(to_layout(xs).copy(), requires_grad=True)
    state_t = tuple(tr.Tensor(s, requires_grad=True) for s in state)
    outputs, final = run(x_t, state_of(state_t) if given_state else None, lengths=lengths)
    final = state_parts(final)
    ((outputs * to_layout(doutputs)).sum() + sum((f * g).sum() for f, g in zip(final, dfinal))).backward()

    assert_close(outputs.data, to_layout(flip(expected)), "outputs")
    for ours, reference in zip(final, state_parts(expected_final)):
        assert_close(ours.data, reference, "final state")
    assert_close(x_t.grad, to_layout(flip(grads.dxs)), "d input")
    if given_state:
        for ours, reference in zip(state_t, state_parts(grads.dstate0)):
            assert_close(ours.grad, reference, "d state")
    for name, p in cell.named_parameters():
        assert_close(p.grad, grads.dparams[name], f"d {name}")


def test_recurrent_unbatched_sequence_equals_a_batch_of_one():
    cell = nn.LSTMCell(3, 2, dtype=np.float64)
    xs = np.random.default_rng(0).standard_normal((5, 3))
    state = (tr.Tensor(np.full(2, 0.5)), tr.Tensor(np.full(2, -0.5)))
    for reverse in (False, True):
        run = nn.Recurrent(cell, reverse=reverse)
        out, (h, c) = run(tr.Tensor(xs), state)
        batched, (bh, bc) = run(tr.Tensor(xs[:, None]), tuple(s.reshape(1, 2) for s in state))
        assert out.shape == (5, 2) and h.shape == (2,) and c.shape == (2,)
        np.testing.assert_array_equal(out.data, batched.data[:, 0])
        np.testing.assert_array_equal(h.data, bh.data[0])
        np.testing.assert_array_equal(c.data, bc.data[0])


# ============================================================================ lengths
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_outputs_past_lengths_are_zero_and_h_n_is_each_rows_own_last_state(kind):
    make, _, _, _, n_parts = KINDS[kind]
    layer = make(3, 4, num_layers=2, bidirectional=True, dtype=np.float64)
    lengths = np.array([5, 1, 3])
    x = tr.Tensor(np.random.default_rng(2).standard_normal((5, 3, 3)), requires_grad=True)
    output, final = layer(x, lengths=lengths)
    h_n = state_parts(final)[0].data
    for n, length in enumerate(lengths):
        assert np.all(output.data[length:, n] == 0.0)
        if kind != "rnn_relu":  # relu outputs may be zero anywhere
            assert np.all(output.data[:length, n] != 0.0)
        np.testing.assert_array_equal(h_n[2, n], output.data[length - 1, n, :4])  # forward: its last step
        np.testing.assert_array_equal(h_n[3, n], output.data[0, n, 4:])  # reverse: ends at step 0
        # each row alone, cut to its own length, gives the same outputs and final states
        alone, alone_final = layer(x.data[:length, n:n + 1])
        np.testing.assert_allclose(output.data[:length, n], alone.data[:, 0], rtol=1e-13, atol=1e-15)
        for ours, cut in zip(state_parts(final), state_parts(alone_final)):
            np.testing.assert_allclose(ours.data[:, n], cut.data[:, 0], rtol=1e-13, atol=1e-15)
    output.sum().backward()
    for n, length in enumerate(lengths):
        assert np.all(x.grad[length:, n] == 0.0)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_all_full_lengths_equal_no_lengths(kind):
    layer = KINDS[kind][0](2, 3, num_layers=2, bidirectional=True, dtype=np.float64)
    x = np.random.default_rng(3).standard_normal((4, 2, 2))
    plain, plain_final = layer(x)
    for lengths in (np.array([4, 4]), [4, 4], tr.Tensor(np.array([4, 4]))):
        full, full_final = layer(x, lengths=lengths)
        np.testing.assert_array_equal(full.data, plain.data)
        for a, b in zip(state_parts(full_final), state_parts(plain_final)):
            np.testing.assert_array_equal(a.data, b.data)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_unbatched_input_equals_a_batch_of_one(kind):
    make, _, _, _, n_parts = KINDS[kind]
    for batch_first in (False, True):
        layer = make(3, 2, num_layers=2, bidirectional=True, batch_first=batch_first, dtype=np.float64)
        rng = np.random.default_rng(4)
        xs = rng.standard_normal((5, 3))
        hx = tuple(rng.standard_normal((4, 2)) for _ in range(n_parts))
        output, final = layer(tr.Tensor(xs), state_of(tuple(tr.Tensor(h) for h in hx)))
        batched, batched_final = layer(tr.Tensor(xs[None] if batch_first else xs[:, None]),
                                       state_of(tuple(tr.Tensor(h[:, None]) for h in hx)))
        assert output.shape == (5, 4)
        np.testing.assert_array_equal(output.data, batched.data[0] if batch_first else batched.data[:, 0])
        for ours, theirs in zip(state_parts(final), state_parts(batched_final)):
            assert ours.shape == (4, 2)
            np.testing.assert_array_equal(ours.data, theirs.data[:, 0])


# ============================================================================ names and dropout
def test_parameter_names_are_pytorchs():
    layer = nn.LSTM(3, 2, num_layers=2, bidirectional=True)
    shapes = {name: p.shape for name, p in layer.named_parameters()}
    expected = {}
    for k, layer_input in ((0, 3), (1, 4)):
        for suffix in ("", "_reverse"):
            expected.update({f"weight_ih_l{k}{suffix}": (8, layer_input), f"weight_hh_l{k}{suffix}": (8, 2),
                             f"bias_ih_l{k}{suffix}": (8,), f"bias_hh_l{k}{suffix}": (8,)})
    assert shapes == expected
    assert set(dict(nn.GRU(3, 2, bias=False).named_parameters())) == {"weight_ih_l0", "weight_hh_l0"}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_dropout_between_layers_is_off_in_eval(kind):
    make = KINDS[kind][0]
    manual_seed(0)  # fixed weights: with relu, an unlucky draw can leave a layer all zero, and dropout nothing to drop
    with_dropout = make(3, 16, num_layers=3, dropout=0.5, dtype=np.float64)
    without = make(3, 16, num_layers=3, dtype=np.float64)
    without.load_state_dict(with_dropout.state_dict())
    x = np.random.default_rng(5).standard_normal((6, 2, 3))
    training_runs = [with_dropout(x)[0].data for _ in range(2)]
    assert not np.array_equal(training_runs[0], training_runs[1])  # dropout is on while training
    with_dropout.eval()
    first, second, reference = with_dropout(x)[0].data, with_dropout(x)[0].data, without(x)[0].data
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(first, reference)
    with_dropout.train()
    assert not np.array_equal(with_dropout(x)[0].data, reference)


# ============================================================================ bad input
@pytest.fixture
def lstm_layer():
    return nn.LSTM(3, 2, num_layers=2, bidirectional=True)


def test_wrong_rank_or_feature_size(lstm_layer):
    with pytest.raises(ValueError, match=r"input must be \(T, N, D\) or unbatched \(T, D\), got shape \(3,\)"):
        lstm_layer(np.zeros(3, dtype=np.float32))
    with pytest.raises(ValueError, match=r"\(N, T, D\).*got shape \(1, 2, 3, 3\)"):
        nn.GRU(3, 2, batch_first=True)(np.zeros((1, 2, 3, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"expected input size 3, got 4"):
        lstm_layer(np.zeros((5, 2, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="length 0"):
        lstm_layer(np.zeros((0, 2, 3), dtype=np.float32))
    with pytest.raises(TypeError, match="input must be a Tensor or ndarray"):
        lstm_layer([[0.0, 0.0, 0.0]])


def test_hx_of_the_wrong_shape_or_structure(lstm_layer):
    x = np.zeros((5, 2, 3), dtype=np.float32)
    good = np.zeros((4, 2, 2), dtype=np.float32)
    with pytest.raises(ValueError, match=r"hx has shapes .*\(4, 3, 2\).*expected \(\(4, 2, 2\), \(4, 2, 2\)\)"):
        lstm_layer(x, (good, np.zeros((4, 3, 2), dtype=np.float32)))
    with pytest.raises(ValueError, match=r"hx has shapes .*\(2, 2, 2\).*expected"):
        lstm_layer(x, (np.zeros((2, 2, 2), dtype=np.float32), good))
    with pytest.raises(ValueError, match=r"hx has shapes \(4, 2, 2\), expected \(\(4, 2, 2\), \(4, 2, 2\)\)"):
        lstm_layer(x, tr.Tensor(good))  # an LSTM needs (h_0, c_0)
    gru_layer = nn.GRU(3, 2, num_layers=2)
    with pytest.raises(ValueError, match=r"hx has shapes \(1, 2, 2\), expected \(2, 2, 2\)"):
        gru_layer(x, tr.Tensor(np.zeros((1, 2, 2), dtype=np.float32)))
    with pytest.raises(ValueError, match=r"hx has shapes \(2, 3, 2\), expected \(2, 2, 2\)"):
        gru_layer(x, np.zeros((2, 3, 2), dtype=np.float32))


def test_hx_may_be_an_ndarray():
    layer = nn.GRU(3, 2, num_layers=2, dtype=np.float64)
    x = np.random.default_rng(6).standard_normal((4, 2, 3))
    hx = np.random.default_rng(7).standard_normal((2, 2, 2))
    np.testing.assert_array_equal(layer(x, hx)[0].data, layer(x, tr.Tensor(hx))[0].data)


@pytest.mark.parametrize("lengths, message", [
    ([6, 2], r"between 1 and the sequence length 5, got 6"),
    ([0, 2], r"between 1 and the sequence length 5, got 0"),
    ([-1, 2], r"between 1 and the sequence length 5, got -1"),
    ([2, 2, 2], r"one entry per sequence: expected shape \(2,\), got \(3,\)"),
    ([2.5, 2], r"lengths must be integers"),
])
def test_bad_lengths_are_named(lstm_layer, lengths, message):
    with pytest.raises((ValueError, TypeError), match=message):
        lstm_layer(np.zeros((5, 2, 3), dtype=np.float32), lengths=lengths)


def test_recurrent_needs_a_cell():
    with pytest.raises(TypeError, match="needs an nn.Cell"):
        nn.Recurrent(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="num_layers must be at least 1"):
        nn.RNN(2, 2, num_layers=0)
