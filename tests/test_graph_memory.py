"""What the graph keeps, and the accelerator's factored weight gradient in blocks.

A node keeps only the arrays its backward reads: temporaries nobody else holds are freed after the
forward. The core computes a weight's gradient at each use (g^T h); inside the accelerator's
recurrent loop a weight used at every step gets its gradient from factors multiplied out a block at
a time (``accelerator.product.ProductGrad``); with a tiny block every path through that code runs,
and the result must equal the sum written out by hand (and the op-by-op core's).
"""
import gc
import weakref

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinygrad_rnn as tr
import tinygrad_rnn.accelerator.product as product_module
import tinygrad_rnn.functional as F
import tinygrad_rnn.nn as nn
from tinygrad_rnn.viz import graph_counts


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
    node = y._node
    assert node.op is tr.ops.MUL and node.saved[1] is not None and np.array_equal(node.saved[1], constant)
    grad_of_scaled, grad_of_constant = node.op.backward(np.ones((4, 3)), None, node.ctx, *node.saved)
    assert grad_of_constant is None
    np.testing.assert_allclose(grad_of_scaled, constant, rtol=0)
    y.sum().backward()
    np.testing.assert_allclose(a.grad, constant, rtol=0)


@pytest.fixture
def tiny_product_blocks(monkeypatch):
    """Multiply the factors out after every term, so that folding runs in small tests."""
    monkeypatch.setattr(product_module, "_PRODUCT_BLOCK_BYTES", 1)


WAYS = ["linear", "h @ W.T", "h @ WT, one WT for all steps", "h @ W.T.permute(0, 1).T.T", "h @ W.transpose(0, 1)",
        "linear, and W elementwise too"]


def pre_activation(h, W, how, shared_transpose):
    """h W^T (N, 4) written the way ``how`` names (plus the row sums of W * W for "elementwise too")."""
    if how.startswith("linear"):
        pre = F.linear(h, W)
    elif how == "h @ W.T":
        pre = h @ W.T
    elif how == "h @ WT, one WT for all steps":  # its node gathers every step's gradient, then passes it on
        pre = h @ shared_transpose
    elif how == "h @ W.transpose(0, 1)":  # PyTorch's spelling of W.T
        pre = h @ W.transpose(0, 1)
    else:  # an identity permutation between the transposes must leave the factors as they are
        pre = h @ W.T.permute(0, 1).T.T
    return pre + (W * W).sum(axis=1) if how.endswith("too") else pre


def hand_summed(W, x, h0, upstream, how):
    """h_{t+1} = tanh((x_t + h_t W^T [+ rowsum(W * W)])[:, :3]), loss = sum_t sum(h_{t+1} * upstream_t):
    -> (dW, dh0, dx), going back through the steps by hand (dW = sum_t dpre_t^T h_t [+ 2 W rowsum(dpre_t)])."""
    extra = (W * W).sum(axis=1) if how.endswith("too") else 0
    states = [h0]
    for x_t in x:
        states.append(np.tanh((x_t + states[-1] @ W.T + extra)[:, :3]))
    grad_W, dh, dx = np.zeros_like(W), np.zeros_like(h0), np.zeros_like(x)
    for t in reversed(range(len(x))):
        dpre = np.zeros_like(x[t])
        dpre[:, :3] = (dh + upstream[t]) * (1 - states[t + 1] ** 2)
        grad_W += dpre.T @ states[t]
        if how.endswith("too"):
            grad_W += 2 * W * dpre.sum(axis=0)[:, None]
        dh, dx[t] = dpre @ W, dpre
    return grad_W, dh, dx


@settings(max_examples=25, deadline=None)
@given(steps=st.integers(1, 9), batch=st.integers(1, 4), seed=st.integers(0, 10_000), how=st.sampled_from(WAYS))
def test_on_the_core_a_weight_used_at_every_step_gets_the_hand_summed_gradient(steps, batch, seed, how):
    """The core's walk: each use of W gives its own g^T h (no factors), added up over the steps."""
    rng = np.random.default_rng(seed)
    W = tr.Tensor(rng.standard_normal((4, 3)) / 2, requires_grad=True)
    h = tr.Tensor(rng.standard_normal((batch, 3)), requires_grad=True)
    x = tr.Tensor(rng.standard_normal((steps, batch, 4)), requires_grad=True)
    upstream = rng.standard_normal((steps, batch, 3))
    shared_transpose = W.T
    state, loss = h, 0
    for t in range(steps):
        state = (x[t] + pre_activation(state, W, how, shared_transpose))[:, :3].tanh()
        loss = loss + (state * tr.Tensor(upstream[t])).sum()
    loss.backward()
    grad_W, dh, dx = hand_summed(W.data, x.data, h.data, upstream, how)
    np.testing.assert_allclose(W.grad, grad_W, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(h.grad, dh, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(x.grad, dx, rtol=1e-10, atol=1e-12)


class TiedStepCell(nn.Cell):
    """h' = tanh((x + h W^T [+ rowsum(W * W)])[:, :3]), h W^T written the way ``how`` names; W (4, 3),
    x (N, 4), h (N, 3). W.T for "one WT for all steps" is made once, outside the step."""

    hidden_size = 3

    def __init__(self, W, how):
        super().__init__()
        self.W, self.how = nn.Parameter(W), how
        self.shared_transpose = self.W.T if how == "h @ WT, one WT for all steps" else None

    def forward(self, x, h):
        return (x + pre_activation(h, self.W, self.how, self.shared_transpose))[:, :3].tanh()


@settings(max_examples=40, deadline=None)
@given(steps=st.integers(3, 9), batch=st.integers(1, 4), seed=st.integers(0, 10_000), how=st.sampled_from(WAYS),
       x_needs_grad=st.booleans(), block=st.sampled_from([1, 1 << 40]))
@pytest.mark.usefixtures("accelerator_on")
def test_in_a_replayed_loop_a_weight_used_at_every_step_gets_the_hand_summed_gradient(steps, batch, seed, how,
                                                                                     x_needs_grad, block):
    """The same recurrence as one "recurrent_loop" node: W's gradient from every step stays factored
    (through linear, matmul and the transposes between them), shares rows of the loop's buffers
    where it can (the input's gradient, when x needs one; the states) and is multiplied out a term
    at a time (block 1) or once (a block too large to fill): always the sum written out by hand."""
    rng = np.random.default_rng(seed)
    cell = TiedStepCell(rng.standard_normal((4, 3)) / 2, how)
    h = tr.Tensor(rng.standard_normal((batch, 3)), requires_grad=True)
    x = tr.Tensor(rng.standard_normal((steps, batch, 4)), requires_grad=x_needs_grad)
    upstream = rng.standard_normal((steps, batch, 3))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(product_module, "_PRODUCT_BLOCK_BYTES", block)
        outputs, _ = nn.Recurrent(cell)(x, h)
        loss = (outputs * tr.Tensor(upstream)).sum()
        assert graph_counts(loss).ops["recurrent_loop"] == 1
        loss.backward()
    grad_W, dh, dx = hand_summed(cell.W.data, x.data, h.data, upstream, how)
    np.testing.assert_allclose(cell.W.grad, grad_W, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(h.grad, dh, rtol=1e-10, atol=1e-12)
    if x_needs_grad:
        np.testing.assert_allclose(x.grad, dx, rtol=1e-10, atol=1e-12)
    else:
        assert x.grad is None


@pytest.mark.usefixtures("accelerator_on")
def test_an_lstm_layer_gives_the_same_gradients_with_tiny_and_default_blocks_as_the_core(tiny_product_blocks,
                                                                                          monkeypatch):
    rng = np.random.default_rng(4)
    layer = tr.nn.LSTM(3, 5, dtype=np.float64)
    x = tr.Tensor(rng.standard_normal((7, 2, 3)))
    upstream = tr.Tensor(rng.standard_normal((7, 2, 5)))

    def gradients():
        layer.zero_grad()
        loss = (layer(x)[0] * upstream).sum()
        loops = graph_counts(loss).ops["recurrent_loop"]
        loss.backward()
        return loops, {name: p.grad.copy() for name, p in layer.named_parameters()}

    tiny_loops, tiny = gradients()
    monkeypatch.setattr(product_module, "_PRODUCT_BLOCK_BYTES", 1 << 40)
    default_loops, default = gradients()
    with tr.fast(False):
        core_loops, core = gradients()
    assert (tiny_loops, default_loops, core_loops) == (1, 1, 0)
    for name in core:
        np.testing.assert_allclose(tiny[name], default[name], rtol=1e-12, atol=1e-14, err_msg=name)
        np.testing.assert_allclose(tiny[name], core[name], rtol=1e-12, atol=1e-14, err_msg=name)


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
        patch.setattr(product_module, "_PRODUCT_BLOCK_BYTES", block)
        total = None
        for t, share in zip(order, shares):
            left, right = lefts[t].copy(), rights[partner[t]].copy()
            term = product_module.ProductGrad(left, right)
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
