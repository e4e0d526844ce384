"""What the graph keeps, and the factored weight gradient in blocks.

A node keeps only the arrays its backward reads: temporaries nobody else holds are freed after the
forward. A weight used at many steps gets its gradient from factors multiplied out a block at a
time (``ProductGrad``); with a tiny block every path through that code runs, and the result must
equal the sum written out by hand.
"""
import gc
import weakref

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinygrad_rnn as tr
import tinygrad_rnn.functional as F
import tinygrad_rnn.tensor as tensor_module


def test_a_temporary_no_backward_reads_is_freed_and_backward_still_works():
    rng = np.random.default_rng(0)
    a = tr.Tensor(rng.standard_normal((3, 4)), requires_grad=True)
    b = tr.Tensor(rng.standard_normal((3, 4)), requires_grad=True)
    total = a + b                       # add's backward reads neither input nor output
    total_data = weakref.ref(total.data)
    y = total.tanh()                    # tanh's backward reads only its output
    del total
    gc.collect()
    assert total_data() is None
    y.sum().backward()
    expected = 1 - np.tanh(a.data + b.data) ** 2
    np.testing.assert_allclose(a.grad, expected, rtol=1e-12)
    np.testing.assert_allclose(b.grad, expected, rtol=1e-12)


def test_an_input_a_backward_reads_is_kept():
    rng = np.random.default_rng(1)
    a = tr.Tensor(rng.standard_normal(5), requires_grad=True)
    scaled = a * 3.0
    scaled_data = weakref.ref(scaled.data)
    y = scaled * scaled                 # mul's backward reads both inputs
    del scaled
    gc.collect()
    assert scaled_data() is not None
    y.sum().backward()
    np.testing.assert_allclose(a.grad, 18 * a.data, rtol=1e-12)


def test_a_product_with_a_constant_keeps_only_the_constant_and_computes_only_the_needed_gradient():
    rng = np.random.default_rng(2)
    a = tr.Tensor(rng.standard_normal((4, 3)), requires_grad=True)
    constant = rng.standard_normal((4, 3))
    scaled = a + 1.0                    # add's backward reads nothing
    scaled_data = weakref.ref(scaled.data)
    y = scaled * tr.Tensor(constant)    # only scaled needs a gradient: g * constant; scaled itself is not read
    del scaled
    gc.collect()
    assert scaled_data() is None
    (grad_of_scaled,) = y._node.backward(np.ones((4, 3)), None, y._node.ctx, *y._node.saved)[:1]
    assert y._node.backward(np.ones((4, 3)), None, y._node.ctx, *y._node.saved)[1] is None
    np.testing.assert_allclose(grad_of_scaled, constant, rtol=0)
    y.sum().backward()
    np.testing.assert_allclose(a.grad, constant, rtol=0)


@pytest.fixture
def tiny_product_blocks(monkeypatch):
    """Multiply the factors out after every few terms, so that folding runs in small tests."""
    monkeypatch.setattr(tensor_module, "_PRODUCT_BLOCK_BYTES", 1)


@settings(max_examples=25, deadline=None)
@given(steps=st.integers(1, 9), batch=st.integers(1, 4), seed=st.integers(0, 10_000),
       how=st.sampled_from(["linear", "h @ W.T", "h @ WT, one WT for all steps", "h @ W.T.permute(0, 1).T.T",
                                    "h @ W.transpose(0, 1)"]))
def test_a_weight_used_at_every_step_gets_the_hand_summed_gradient(steps, batch, seed, how):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tensor_module, "_PRODUCT_BLOCK_BYTES", 1)
        check_weight_used_at_every_step(steps, batch, seed, how)


def check_weight_used_at_every_step(steps, batch, seed, how):
    rng = np.random.default_rng(seed)
    W = tr.Tensor(rng.standard_normal((4, 3)) / 2, requires_grad=True)
    h = tr.Tensor(rng.standard_normal((batch, 3)), requires_grad=True)
    upstream = rng.standard_normal((steps, batch, 3))
    states, loss = [h], 0
    shared_transpose = W.T  # its node gathers every step's factors, then passes them on transposed
    for t in range(steps):  # h_{t+1} = tanh(h_t W^T), written three ways
        if how == "linear":
            pre = F.linear(states[-1], W)
        elif how == "h @ W.T":
            pre = states[-1] @ W.T
        elif how == "h @ WT, one WT for all steps":
            pre = states[-1] @ shared_transpose
        elif how == "h @ W.transpose(0, 1)":  # PyTorch's spelling of W.T
            pre = states[-1] @ W.transpose(0, 1)
        else:  # an identity permutation between the transposes must leave the factors as they are
            pre = states[-1] @ W.T.permute(0, 1).T.T
        new = pre[:, :3].tanh()
        loss = loss + (new * tr.Tensor(upstream[t])).sum()
        states.append(new)
    loss.backward()
    # by hand: dW = sum_t dpre_t^T h_t, going back through the steps
    grad_W, dh = np.zeros((4, 3)), np.zeros((batch, 3))
    for t in reversed(range(steps)):
        out = states[t + 1].data
        dpre = np.zeros((batch, 4))
        dpre[:, :3] = (dh + upstream[t]) * (1 - out ** 2)
        grad_W += dpre.T @ states[t].data
        dh = dpre @ W.data
    np.testing.assert_allclose(W.grad, grad_W, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(h.grad, dh, rtol=1e-10, atol=1e-12)


def test_factored_and_plain_gradients_of_one_weight_add_up(tiny_product_blocks):
    rng = np.random.default_rng(3)
    W = tr.Tensor(rng.standard_normal((2, 3)), requires_grad=True)
    xs = [tr.Tensor(rng.standard_normal((4, 3))) for _ in range(3)]
    loss = sum((F.linear(x, W) ** 2).sum() for x in xs) + (W * W).sum()  # factored terms and a plain one
    loss.backward()
    expected = sum(2 * (x.data @ W.data.T).T @ x.data for x in xs) + 2 * W.data
    np.testing.assert_allclose(W.grad, expected, rtol=1e-10)


def test_an_lstm_layer_gives_the_same_gradients_with_tiny_and_default_blocks(tiny_product_blocks, monkeypatch):
    rng = np.random.default_rng(4)
    layer = tr.nn.LSTM(3, 5, dtype=np.float64)
    x = tr.Tensor(rng.standard_normal((7, 2, 3)))
    upstream = tr.Tensor(rng.standard_normal((7, 2, 5)))
    (layer(x)[0] * upstream).sum().backward()
    tiny = {name: p.grad.copy() for name, p in layer.named_parameters()}
    monkeypatch.setattr(tensor_module, "_PRODUCT_BLOCK_BYTES", 1 << 40)
    layer.zero_grad()
    (layer(x)[0] * upstream).sum().backward()
    for name, p in layer.named_parameters():
        np.testing.assert_allclose(tiny[name], p.grad, rtol=1e-12, atol=1e-14, err_msg=name)


@settings(max_examples=60, deadline=None)
@given(steps=st.integers(1, 8), batch=st.integers(1, 3), seed=st.integers(0, 10_000), data=st.data())
def test_terms_shared_as_rows_of_buffers_sum_to_the_hand_written_total(steps, batch, seed, data):
    """Terms L[t]^T R[s]: some left as they are, some sharing rows of the buffers L and R (in runs up,
    down, or broken), folded in blocks or at the end, transposed or not: always sum_i L_i^T R_i."""
    rng = np.random.default_rng(seed)
    lefts, rights = rng.standard_normal((steps, batch, 4)), rng.standard_normal((steps + 1, batch, 3))
    order = data.draw(st.permutations(range(steps)) | st.just(list(range(steps))) | st.just(list(range(steps))[::-1]))
    shares = data.draw(st.lists(st.sampled_from(["both", "left", "right", "none"]), min_size=steps, max_size=steps))
    block = data.draw(st.sampled_from([1, 1 << 40]))
    partner = data.draw(st.just([t + 1 for t in range(steps)]) | st.permutations(range(steps + 1)))  # R row of L[t]
    expected = sum(lefts[t].T @ rights[partner[t]] for t in order)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tensor_module, "_PRODUCT_BLOCK_BYTES", block)
        total = None
        for t, share in zip(order, shares):
            left, right = lefts[t].copy(), rights[partner[t]].copy()
            term = tensor_module.ProductGrad(left, right)
            if share in ("both", "left"):
                term.share_last_term(left, lefts, t)
            if share in ("both", "right"):
                term.share_last_term(right, rights, partner[t])
            if total is None:
                total = term
            else:
                total.extend(term)
        transposed = data.draw(st.booleans())
        value = total.transpose().value() if transposed else total.value()
    np.testing.assert_allclose(value, expected.T if transposed else expected, rtol=1e-12, atol=1e-12)
