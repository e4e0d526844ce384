"""gradflow.compare_clipping and the demo's initialisations: the gradient against the layer's own backward,
the clipped gradients against clipping written out here, the cosines against their definition, and the
exploding relu RNN started at 1.1·I.
"""
import numpy as np
import pytest

import tinygrad_rnn as tr
import tinygrad_rnn.gradflow as gradflow
import tinygrad_rnn.nn as nn


def own_gradient(module, x):
    """∂L/∂W for every parameter, L = last_output_loss, by the module's own forward and backward."""
    module.zero_grad()
    output, _ = module(tr.Tensor(x))
    gradflow.last_output_loss(output).backward()
    return {name: p.grad.copy() for name, p in module.named_parameters()}


def flat(arrays):
    return np.concatenate([a.ravel() for a in arrays.values()])


@pytest.mark.parametrize("layer", [nn.RNN, nn.LSTM, nn.GRU])
def test_clipping_against_clipping_written_out(layer):
    tr.manual_seed(1)
    module = layer(3, 4, dtype=np.float64)
    x = np.random.default_rng(2).standard_normal((6, 2, 3))
    expected = own_gradient(module, x)
    g = flat(expected)
    threshold = 0.2 * np.abs(g).max()  # below ‖g‖ and below the largest entries: both clippings act
    got = gradflow.compare_clipping(module, x, threshold)
    for name, value in expected.items():
        np.testing.assert_allclose(got.gradient[name], value, rtol=1e-12, atol=1e-15)
        unclipped = got.gradient[name]
        np.testing.assert_array_equal(got.clipped["value"][name],
                                      np.minimum(np.maximum(unclipped, -threshold), threshold))
        np.testing.assert_allclose(got.clipped["norm"][name], unclipped * threshold / (np.linalg.norm(g) + 1e-6),
                                   rtol=1e-12)
    assert got.norm == pytest.approx(np.linalg.norm(g), rel=1e-12)
    for method in ("norm", "value"):
        clipped = flat(got.clipped[method])
        assert got.cosine[method] == pytest.approx(clipped @ g / (np.linalg.norm(clipped) * np.linalg.norm(g)),
                                                   rel=1e-12)
        assert got.clipped_norm[method] == pytest.approx(np.linalg.norm(clipped), rel=1e-12)
    assert got.cosine["norm"] == pytest.approx(1.0, abs=1e-12)
    assert got.cosine["value"] < 1 - 1e-6
    assert got.changed["value"] == pytest.approx(np.mean(np.abs(g) > threshold))
    for name, p in module.named_parameters():  # the module's own .grad is neither used nor clipped
        np.testing.assert_array_equal(p.grad, expected[name])


def test_a_gradient_below_the_threshold_is_left_alone():
    got = gradflow.compare_clipping(nn.GRUCell(2, 3, dtype=np.float64), np.ones((4, 1, 2)), threshold=1e6)
    assert got.cosine == pytest.approx({"norm": 1.0, "value": 1.0}, abs=1e-15)
    assert got.changed == {"norm": 0.0, "value": 0.0}


def test_a_relu_rnn_started_at_1_1_identity_explodes_and_only_norm_clipping_keeps_the_direction():
    xs, models = gradflow.demo_models("rnn", seq_len=60, hidden=8, input_size=4, nonlinearity="relu",
                                      init_name="identity", scale=1.1)
    cell = models["rnn"]
    np.testing.assert_array_equal(cell.weight_hh.data, 1.1 * np.eye(8))
    norms = gradflow.hidden_grad_norms(cell, xs)
    assert norms[0] > 100 * norms[-1]  # growing backwards through time: 1.1 per active step
    got = gradflow.compare_clipping(cell, xs, threshold=1.0)
    assert got.norm > 1e3
    assert got.cosine["norm"] == pytest.approx(1.0, abs=1e-12) and got.clipped_norm["norm"] == pytest.approx(1.0)
    assert got.cosine["value"] < 0.9


def test_cosine_of_huge_and_tiny_vectors_neither_overflows_nor_underflows():
    a = np.array([3e300, 4e300])
    assert gradflow.clipping.cosine(a, a * 1e-300 * 1e-305) == pytest.approx(1.0)
    assert gradflow.clipping.cosine(np.array([1.0, 0.0]), np.array([0.0, 5e-320])) == 0.0
    assert gradflow.clipping.cosine(np.zeros(2), a) == 0.0


def test_demo_initialisations():
    _, models = gradflow.demo_models(("lstm", "gru"), seq_len=3, hidden=4, input_size=2, init_name="orthogonal",
                                     scale=0.5, forget_bias=1.0)
    _, plain = gradflow.demo_models(("lstm", "gru"), seq_len=3, hidden=4, input_size=2)
    for name, gates in (("lstm", 4), ("gru", 3)):
        weight = models[name].weight_hh.data
        for gate in range(gates):
            block = weight[gate * 4:(gate + 1) * 4]
            np.testing.assert_allclose(block @ block.T, 0.25 * np.eye(4), atol=1e-14)
    bias, plain_bias = models["lstm"].bias_hh.data, plain["lstm"].bias_hh.data
    np.testing.assert_allclose(bias - plain_bias, np.r_[np.zeros(4), np.ones(4), np.zeros(8)], atol=1e-15)
    xs, float32 = gradflow.demo_models("rnn", seq_len=3, hidden=2, input_size=2, dtype="float32")
    assert xs.dtype == float32["rnn"].weight_hh.dtype == np.float32


@pytest.mark.parametrize("call, error, message", [
    (lambda: gradflow.compare_clipping(nn.RNNCell(2, 2), np.ones((3, 1, 2), np.float32), threshold=0), ValueError,
     "threshold"),
    (lambda: gradflow.compare_clipping(nn.RNNCell(2, 2), np.ones((3, 1, 2), np.float32), methods=("l1",)),
     ValueError, "methods"),
    (lambda: gradflow.demo_models("rnn", scale=2.0), ValueError, "scale"),
    (lambda: gradflow.demo_models("gru", forget_bias=1.0), ValueError, "forget_bias"),
    (lambda: gradflow.demo_models("lstm", nonlinearity="relu"), ValueError, "nonlinearity"),
    (lambda: gradflow.demo_models("rnn", init_name="xavier"), ValueError, "init"),
    (lambda: gradflow.demo_models("rnn", dtype="float16"), ValueError, "dtype"),
    (lambda: gradflow.demo_models("rnn", hiden=3), TypeError, "hiden"),
    (lambda: gradflow.demo_models("rnn", seed=-1), ValueError, "seed"),
])
def test_bad_input_gets_a_clear_error(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_an_overflowing_gradient_is_refused_clearly():
    _, models = gradflow.demo_models("rnn", hidden=4, input_size=2, nonlinearity="relu", init_name="identity",
                                     scale=3.0, dtype="float32")
    xs = tr.Tensor(np.ones((200, 1, 2), np.float32))
    with np.errstate(all="ignore"), pytest.raises(ValueError, match="not finite"):
        gradflow.compare_clipping(models["rnn"], xs)


OVERFLOWING = dict(seq_len=700, hidden=4, input_size=2, nonlinearity="relu", init_name="identity", scale=3.0)


@pytest.mark.parametrize("measure", [
    lambda cell, xs: gradflow.hidden_grad_norms(cell, xs),
    lambda cell, xs: gradflow.weight_grad_contributions(cell, xs),
    lambda cell, xs: gradflow.jacobians(cell, xs),
    lambda cell, xs: gradflow.contribution_matrix(cell, xs),
    lambda cell, xs: gradflow.compare_clipping(cell, xs),
], ids=["hidden_grad_norms", "weight_grad_contributions", "jacobians", "contribution_matrix", "compare_clipping"])
def test_a_forward_that_overflows_is_refused_not_measured_as_zero(measure):
    """3^700 overflows float64: the states turn inf, then NaN, and relu's mask (NaN > 0 is False) would hand
    every earlier step an exactly-0 gradient, an explosion reported as vanishing. Refused, naming the step,
    without NumPy's warnings."""
    xs, models = gradflow.demo_models("rnn", **OVERFLOWING)
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # a NumPy warning would be an error here
        with pytest.raises(ValueError, match=r"the state after step \d+ is not finite .*float64"):
            measure(models["rnn"], xs)


class SilentDoubler(nn.Cell):
    """h' = h W^T + 0·x: from a zero state every h_t is 0 (finite), while the gradient doubles per step back."""

    def __init__(self):
        super().__init__()
        self.hidden_size = 2
        self.W = nn.Parameter(2.0 * np.eye(2))

    def forward(self, x, h):
        return h @ self.W.T + x * 0.0


def test_a_backward_that_overflows_is_refused_without_warnings():
    """2^1100 passes float64's range in the backward walk only; no advice to use float64, which it is."""
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # a NumPy warning would be an error here
        with pytest.raises(ValueError, match=r"the gradient is not finite \(it overflowed float64\)") as raised:
            gradflow.compare_clipping(SilentDoubler(), np.zeros((1100, 1, 2)))
    assert "use float64" not in str(raised.value)
