"""gradflow hands a user's loss the outputs exactly as the layer returns them: (N, T, H) for a batch_first
layer, (T, H) for an unbatched input, as the layer's own forward and ``tr.bptt.truncated_gradients`` do.

Each loss below is written in the layer's own layout and would read other numbers (or fail) on the
time-major (T, N, H) outputs. The measurements are checked against the layer's own forward and backward
(gradients), finite differences through the layer's own forward (‖∂L/∂h_t‖), and the same measurement
on a time-major layer with the same weights and the loss rewritten for that layout.
"""
import numpy as np
import pytest

import tinygrad_rnn as tr
import tinygrad_rnn.gradflow as gradflow
import tinygrad_rnn.nn as nn

LAYERS = [nn.RNN, nn.LSTM, nn.GRU]
STEPS, BATCH, INPUT, HIDDEN = 4, 2, 3, 3


READOUT = np.array([1.0, -2.0, 0.5])  # (H,)


def batch_first_loss(outputs):
    """The last step read out plus the first step squared, for (N, T, H); on (T, N, H) it silently reads
    the last sequence of the batch and the first one instead."""
    return (outputs[:, -1] * READOUT).sum() + (outputs[:, 0] * outputs[:, 0]).sum() * 0.5


def unbatched_loss(outputs):
    """Unit 0 of every step squared plus the last step read out, for (T, H); on (T, 1, H) it silently
    squares every unit."""
    return (outputs[:, 0] * outputs[:, 0]).sum() * 0.5 + (outputs[-1] * READOUT).sum()


def setups():
    """(layer, x, loss in the layer's layout, time-major layer with the same weights, its x, its loss)."""
    rng = np.random.default_rng(7)
    made = []
    for kind in LAYERS:
        tr.manual_seed(3)
        layer = kind(INPUT, HIDDEN, batch_first=True, dtype=np.float64)
        time_major = kind(INPUT, HIDDEN, dtype=np.float64)
        time_major.load_state_dict(layer.state_dict())
        x = rng.standard_normal((BATCH, STEPS, INPUT))
        made.append(pytest.param(layer, x, batch_first_loss, time_major, x.transpose(1, 0, 2).copy(),
                                 lambda o: batch_first_loss(o.transpose(0, 1)), id=f"{kind.__name__}-batch_first"))
        single = kind(INPUT, HIDDEN, dtype=np.float64)
        single.load_state_dict(layer.state_dict())
        x = rng.standard_normal((STEPS, INPUT))
        made.append(pytest.param(single, x, unbatched_loss, time_major, x[:, None].copy(),
                                 lambda o: unbatched_loss(o.reshape(STEPS, HIDDEN)), id=f"{kind.__name__}-unbatched"))
    return made


def time_axis(layer, x):
    return 1 if layer.batch_first and x.ndim == 3 else 0


def steps_of(layer, x, start, stop):
    index = [slice(None)] * x.ndim
    index[time_axis(layer, x)] = slice(start, stop)
    return x[tuple(index)]


def own_gradients(layer, x, loss):
    """∂L/∂W by the layer's own forward and backward."""
    layer.zero_grad()
    loss(layer(tr.Tensor(x))[0]).backward()
    return {name: p.grad.copy() for name, p in layer.named_parameters()}


def hidden_norms_by_differences(layer, x, loss):
    """‖∂L/∂h_t‖ by central differences of L(h_t): steps 0..t-1's outputs fixed, h_t itself step t's output,
    steps t+1.. run by the layer's own forward from (h_t, c_t) (c_t held fixed, as gradflow's hook on h_t)."""
    axis, steps = time_axis(layer, x), x.shape[time_axis(layer, x)]
    outputs = layer(tr.Tensor(x))[0].data
    norms = []
    for t in range(steps):
        state = layer(tr.Tensor(steps_of(layer, x, 0, t + 1)))[1]
        parts = state if isinstance(state, tuple) else (state,)
        h_t = parts[0].data[0].copy()

        def loss_of(h):
            pieces = [tr.Tensor(steps_of(layer, outputs, 0, t)), h.reshape(h.shape[:axis] + (1,) + h.shape[axis:])]
            if t + 1 < steps:
                hx = (h.reshape((1,) + h.shape),) + tuple(part for part in parts[1:])
                pieces.append(layer(tr.Tensor(steps_of(layer, x, t + 1, steps)), hx if len(hx) > 1 else hx[0])[0])
            return loss(tr.cat(pieces, axis))

        (found,) = tr.numerical_grad(lambda h: loss_of(tr.Tensor(h)), [h_t])
        norms.append(np.linalg.norm(found))
    return np.array(norms)


@pytest.mark.parametrize("layer, x, loss, time_major, tm_x, tm_loss", setups())
def test_hidden_grad_norms_read_the_loss_in_the_layers_layout(layer, x, loss, time_major, tm_x, tm_loss):
    got = gradflow.hidden_grad_norms(layer, x, loss)
    np.testing.assert_allclose(got, hidden_norms_by_differences(layer, x, loss), rtol=1e-6)
    np.testing.assert_allclose(got, gradflow.hidden_grad_norms(time_major, tm_x, tm_loss), rtol=1e-12)
    np.testing.assert_allclose(gradflow.reference_hidden_grad_norms(layer, x, loss), got, rtol=1e-10)


@pytest.mark.parametrize("layer, x, loss, time_major, tm_x, tm_loss", setups())
def test_weight_contributions_and_clipping_read_the_loss_in_the_layers_layout(layer, x, loss, time_major, tm_x,
                                                                              tm_loss):
    expected = own_gradients(layer, x, loss)
    shares = gradflow.weight_grad_contributions(layer, x, loss)
    reference = gradflow.reference_weight_grad_contributions(layer, x, loss)
    same_weights = gradflow.weight_grad_contributions(time_major, tm_x, tm_loss)
    clipping = gradflow.compare_clipping(layer, x, threshold=0.05, loss_fn=loss)
    for name, value in expected.items():
        np.testing.assert_allclose(shares.total[name], value, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(shares.per_step[name], reference.per_step[name], rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(shares.per_step[name], same_weights.per_step[name], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(clipping.gradient[name], value, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("kind", LAYERS)
@pytest.mark.parametrize("batch_first, unbatched", [(True, False), (False, True)])
def test_the_default_loss_is_the_last_steps_output_in_every_layout(kind, batch_first, unbatched):
    tr.manual_seed(5)
    layer = kind(INPUT, HIDDEN, batch_first=batch_first, dtype=np.float64)
    x = np.random.default_rng(1).standard_normal((STEPS, INPUT) if unbatched else (BATCH, STEPS, INPUT))
    readout = gradflow.unit_readout(HIDDEN, np.float64)
    last = (lambda o: (o[-1] * readout).sum()) if unbatched else (lambda o: (o[:, -1] * readout).sum())
    expected = own_gradients(layer, x, last)
    for loss_fn in (None, gradflow.last_output_loss):
        norms = gradflow.hidden_grad_norms(layer, x, loss_fn)
        assert norms[-1] == pytest.approx(1.0 if unbatched else np.sqrt(BATCH), rel=1e-12)
        np.testing.assert_allclose(norms, gradflow.hidden_grad_norms(layer, x, last), rtol=1e-12)
        for found in (gradflow.weight_grad_contributions(layer, x, loss_fn).total,
                      gradflow.compare_clipping(layer, x, loss_fn=loss_fn).gradient):
            for name, value in expected.items():
                np.testing.assert_allclose(found[name], value, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("kind", LAYERS)
def test_contribution_matrix_hands_an_unbatched_step_its_own_shape(kind):
    tr.manual_seed(2)
    layer = kind(INPUT, HIDDEN, dtype=np.float64)
    x = np.random.default_rng(4).standard_normal((STEPS, INPUT))
    weights = np.linspace(1.0, -1.0, STEPS)
    shapes = []

    def step_loss(output_t, t):
        shapes.append(output_t.shape)
        return output_t[0] * weights[t]  # unit 0 of the step's (H,) output: one element

    got = gradflow.contribution_matrix(layer, x, "weight_hh_l0", step_loss=step_loss)
    assert set(shapes) == {(HIDDEN,)}
    expected = own_gradients(layer, x, lambda o: (o[:, 0] * weights).sum())["weight_hh_l0"]
    np.testing.assert_allclose(got.total, expected, rtol=1e-10, atol=1e-14)


def test_a_loss_that_is_not_callable_is_named():
    with pytest.raises(TypeError, match="hidden_grad_norms: loss_fn must be callable"):
        gradflow.hidden_grad_norms(nn.RNN(2, 2), np.ones((3, 2), np.float32), "last")
    with pytest.raises(TypeError, match="compare_clipping: loss_fn must be callable"):
        gradflow.compare_clipping(nn.RNN(2, 2), np.ones((3, 2), np.float32), loss_fn=3)
