"""The plain core stays O(T) for a sequence read as T steps.

Each step reads its slice x[t]; the slice's backward returns only that slice's gradient and where it
goes (an ``IndexGrad``), and the walk adds it into one gradient buffer for the whole sequence. Were
each slice's gradient a sequence-sized array of zeros, the walk would allocate and add T of them:
O(T^2). These tests count the sequence-sized buffers the walk allocates, which must not grow with T,
and check the gradient against its closed form.
"""
import numpy as np
import pytest

import tinygrad_rnn as tr


def allocations_of_shape(monkeypatch, shape):
    """A list that grows by one at every ``np.zeros`` of ``shape`` from now on (the walk's buffers)."""
    seen, zeros = [], np.zeros

    def counting_zeros(size, *args, **kwargs):
        if tuple(np.atleast_1d(size)) == tuple(shape):
            seen.append(size)
        return zeros(size, *args, **kwargs)

    monkeypatch.setattr(np, "zeros", counting_zeros)
    return seen


@pytest.mark.parametrize("steps", [4, 40])
def test_a_sequence_read_step_by_step_gets_one_gradient_buffer(monkeypatch, steps):
    """loss = sum_t (t + 1) * sum(x[t]): dloss/dx[t] = t + 1 everywhere in row t."""
    x = tr.Tensor(np.random.default_rng(steps).standard_normal((steps, 3, 4)), requires_grad=True)
    loss = x[0].sum()
    for t in range(1, steps):
        loss = loss + (x[t] * float(t + 1)).sum()
    buffers = allocations_of_shape(monkeypatch, x.shape)
    loss.backward()
    assert len(buffers) == 1
    np.testing.assert_array_equal(x.grad, np.broadcast_to(np.arange(1.0, steps + 1)[:, None, None], x.shape))


@pytest.mark.parametrize("layer", [tr.nn.RNN, tr.nn.LSTM, tr.nn.GRU])
def test_an_unrolled_layer_allocates_as_many_sequence_buffers_for_8_steps_as_for_32(monkeypatch, layer):
    """Op by op (the accelerator off), the input's gradient and the input projection's gradient are
    one buffer each, however long the sequence; the gradient equals the accelerator's."""
    counts = {}
    for steps in (8, 32):
        module = layer(3, 5, dtype=np.float64)
        x = tr.Tensor(np.random.default_rng(1).standard_normal((steps, 2, 3)), requires_grad=True)
        with tr.fast(False):
            output, _ = module(x)
        projected = (steps, 2, module.weight_ih_l0.shape[0])
        with monkeypatch.context() as patch:
            buffers = allocations_of_shape(patch, projected) if projected != x.shape else []
            inputs = allocations_of_shape(patch, x.shape)
            output.sum().backward()
        counts[steps] = (len(buffers), len(inputs))
        with tr.fast(True):
            expected = tr.grad(module(x)[0].sum(), x)[0].data
        np.testing.assert_allclose(x.grad, expected, rtol=1e-12, atol=1e-12)
    assert counts[8] == counts[32]
    assert max(counts[32]) <= 1
