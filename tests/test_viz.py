"""viz: DOT text that parses (checked by a small reader here, and by Graphviz when installed), each
parameter named once however many steps use it, and summary counts equal to a hand count."""
import re
import shutil
import subprocess
from collections import Counter

import numpy as np
import pytest

import tinygrad_rnn as tr
import tinygrad_rnn.nn as nn
import tinygrad_rnn.viz as viz


def three_step_graph():
    """h_t = tanh(x_t W + h_{t-1} U), t = 0, 1, 2, from h_{-1} = 0; loss = Σ h_2. W, U (2, 2).

    Hand count: x and h_{-1} need no grad, so x[t] (made without a graph) and h_{-1} are 4 input
    leaves. Each step makes matmul, matmul, add, tanh (4 ops), and the loss one sum: 13 ops.
    W and U are each used once per step: 3 times.
    """
    W = nn.Parameter(np.full((2, 2), 0.3))
    U = nn.Parameter(np.eye(2) * 0.5)
    x = tr.Tensor(np.arange(6.0).reshape(3, 1, 2))
    h = tr.Tensor(np.zeros((1, 2)))
    for t in range(3):
        h = (x[t] @ W + h @ U).tanh()
    return h.sum(), {"W": W, "U": U}


def parse_dot(text):
    """(node ids, edges, {node id: label}) after checking braces balance and edges join declared nodes."""
    depth = 0
    for char in re.sub(r'"(\\.|[^"\\])*"', '""', text):  # braces inside labels do not count
        depth += {"{": 1, "}": -1}.get(char, 0)
        assert depth >= 0
    assert depth == 0
    labels = dict(re.findall(r'^\s*(n\d+) \[label="((?:\\.|[^"\\])*)"', text, flags=re.M))
    edges = re.findall(r"^\s*(n\d+) -> (n\d+);$", text, flags=re.M)
    for a, b in edges:
        assert a in labels and b in labels, (a, b)
    return set(labels), edges, labels


def test_dot_of_the_three_step_graph_parses_and_names_each_parameter_once():
    loss, params = three_step_graph()
    text = viz.to_dot(loss, params)
    assert text.startswith("digraph") and text.rstrip().endswith("}")
    nodes, edges, labels = parse_dot(text)
    assert len(nodes) == 13 + 4 + 2  # ops, input leaves, parameters
    assert len(edges) == 3 * (2 + 2 + 2 + 1) + 1  # per step two matmuls and an add (two inputs each), a tanh; the sum
    for name in params:
        named = [node for node, label in labels.items() if label.split("\\n")[0] == name]
        assert len(named) == 1
        assert "used 3x (shared)" in labels[named[0]]
        assert sum(a == named[0] for a, _ in edges) == 3
    assert Counter(label.split("\\n")[0] for label in labels.values()) == Counter(
        matmul=6, add=3, tanh=3, sum=1, input=4, W=1, U=1)


def test_dot_of_an_unrolled_lstm_names_each_parameter_once():
    module = nn.LSTM(3, 2, dtype=np.float64)
    with tr.fast(False):  # the layer unrolled op by op: a node per op and time step
        output, _ = module(tr.Tensor(np.ones((4, 1, 3))))
    text = viz.to_dot(output.sum(), module)
    _, _, labels = parse_dot(text)
    for name, _ in module.named_parameters():
        assert sum(label.split("\\n")[0] == name for label in labels.values()) == 1
    assert "weight_hh_l0\\n(8, 2)\\nparameter, used 4x (shared)" in text
    assert "weight_ih_l0\\n(8, 3)\\nparameter, used 1x" in text  # one input projection for all steps


@pytest.mark.parametrize("steps", [3, 9])
def test_an_accelerated_lstm_is_one_loop_node_over_all_steps(steps):
    """Hand count for output.sum() of a one-layer LSTM(3, 2) on x (T, 1, 3), whatever T (>= 3):
    the biases added once (add), the input projection of all steps (linear, reshape to (T, 1, 8)),
    ONE recurrent_loop node for all T steps, whose packed output (T + 1, N, H) (the outputs, then
    c's row) the outputs are a view of (getitem), and the sum: 6 ops and no op of a step (no sigmoid,
    tanh, mul).
    The loop node's inputs: the projection, h_0 and c_0 (zeros, no grad: inputs) and weight_hh;
    each parameter is used once, weight_hh by the loop node for every step."""
    module = nn.LSTM(3, 2, dtype=np.float64)
    with tr.fast(True):  # on whatever TINYGRAD_RNN_FAST says
        output, _ = module(tr.Tensor(np.ones((steps, 1, 3))))
    counts = viz.graph_counts(output.sum(), module)
    assert counts.ops == Counter(recurrent_loop=1, add=1, linear=1, reshape=1, getitem=1, sum=1)
    assert counts.leaves == Counter(input=3)  # x (reshaped to (T, 3) for the projection), h_0, c_0
    assert counts.parameter_uses == {"weight_ih_l0": 1, "weight_hh_l0": 1, "bias_ih_l0": 1, "bias_hh_l0": 1}
    assert counts.step_parameter is None and "per step" not in viz.summary(output.sum(), module)
    _, edges, labels = parse_dot(viz.to_dot(output.sum(), module))
    (loop,) = [node for node, label in labels.items() if label.split("\\n")[0] == "recurrent_loop"]
    assert labels[loop] == f"recurrent_loop\\n({steps + 1}, 1, 2)"
    into_loop = sorted(labels[a] for a, b in edges if b == loop)
    assert into_loop == sorted([f"reshape\\n({steps}, 1, 8)", "input\\n(1, 2)", "input\\n(1, 2)",
                                "weight_hh_l0\\n(8, 2)\\nparameter, used 1x"])
    assert [labels[b] for a, b in edges if a == loop] == [f"getitem\\n({steps}, 1, 2)"]


def test_the_outputs_and_the_final_state_are_views_of_the_one_loop_node():
    """output.sum() + h_n.sum() + c_n.sum() of an LSTM(3, 2) on x (5, 1, 3): still one recurrent_loop
    node, read by three getitem views (the outputs (5, 1, 2), h its last row and c the row after it),
    the projection's reshape, h and c stacked into (L*K, N, H); three sums and two adds of the loss,
    plus the biases' add."""
    module = nn.LSTM(3, 2, dtype=np.float64)
    with tr.fast(True):
        output, (h, c) = module(tr.Tensor(np.ones((5, 1, 3))))
    loss = output.sum() + h.sum() + c.sum()
    assert viz.graph_counts(loss, module).ops == Counter(
        recurrent_loop=1, getitem=3, reshape=1, stack=2, sum=3, add=3, linear=1)
    _, edges, labels = parse_dot(viz.to_dot(loss, module))
    (loop,) = [node for node, label in labels.items() if label.split("\\n")[0] == "recurrent_loop"]
    assert sorted(labels[b] for a, b in edges if a == loop) == ["getitem\\n(1, 2)", "getitem\\n(1, 2)",
                                                                 "getitem\\n(5, 1, 2)"]


def test_fast_false_draws_the_same_lstm_step_by_step():
    """The same LSTM under tr.fast(False): no loop node; weight_hh used once per step (5 uses, 4
    periods between them), each period the same ops. Hand count of one period, from h W_hh^T: linear;
    + x_t's projection (add); the four gate slices (getitem x4); sigmoid(i), sigmoid(f), sigmoid(o),
    tanh(g); c = f*c + i*g (mul x2, add); h = o * tanh(c) (tanh, mul); the next step's projection
    slice x_{t+1} (getitem): linear 1, add 2, getitem 5, sigmoid 3, tanh 2, mul 3."""
    module = nn.LSTM(3, 2, dtype=np.float64)
    with tr.fast(False):
        output, _ = module(tr.Tensor(np.ones((5, 1, 3))))
    counts = viz.graph_counts(output.sum(), module)
    assert "recurrent_loop" not in counts.ops
    assert counts.parameter_uses["weight_hh_l0"] == 5 and counts.step_parameter == "weight_hh_l0"
    assert counts.periods == 4 and counts.step_ops is not None
    assert Counter(counts.step_ops) == Counter(linear=1, add=2, getitem=5, sigmoid=3, tanh=2, mul=3)


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_graphviz_reads_the_dot_and_render_writes_an_image(tmp_path):
    loss, params = three_step_graph()
    done = subprocess.run(["dot", "-Tsvg"], input=viz.to_dot(loss, params), text=True, capture_output=True)
    assert done.returncode == 0, done.stderr
    assert viz.render(loss, tmp_path / "graph.png", params).read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(RuntimeError, match="dot could not write"):
        viz.render(loss, tmp_path / "graph.nosuchformat", params)


def test_render_without_dot_points_to_to_dot(monkeypatch, tmp_path):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    loss, _ = three_step_graph()
    with pytest.raises(RuntimeError, match="to_dot"):
        viz.render(loss, tmp_path / "graph.png")


def test_summary_counts_match_the_hand_count():
    loss, params = three_step_graph()
    counts = viz.graph_counts(loss, params)
    assert counts.ops == Counter(matmul=6, add=3, tanh=3, sum=1)
    assert counts.leaves == Counter(input=4)
    assert counts.parameter_uses == {"W": 3, "U": 3}
    assert counts.step_parameter == "W"  # W and U tie; W was created first
    assert counts.step_ops == ("matmul", "matmul", "add", "tanh")  # x_t W, h U, +, tanh
    assert (counts.periods, counts.before, counts.after) == (2, 0, 5)  # the last step's 4 ops and the sum
    text = viz.summary(loss, params)
    assert "13 op outputs, 4 other leaves, 2 parameters" in text
    assert "ops: matmul 6, add 3, tanh 3, sum 1" in text
    assert "parameter W: used 3x (shared)" in text
    assert "4 ops: matmul 2, add 1, tanh 1" in text


def test_summary_says_when_steps_differ():
    run = nn.Recurrent(nn.RNNCell(2, 2, dtype=np.float64))
    output, _ = run(np.ones((4, 2, 2)), lengths=[2, 4])  # steps 2 and 3 mask a finished row
    counts = viz.graph_counts(output.sum(), run)
    assert counts.step_parameter is not None and counts.step_ops is None
    assert "per step: not derivable" in viz.summary(output.sum(), run)


def test_leaves_without_params_and_other_kinds():
    a = tr.Tensor(np.ones(3), requires_grad=True)
    loss = (a * 2.0).sum()
    counts = viz.graph_counts(loss)
    assert counts.ops == Counter(mul=1, sum=1) and counts.parameter_uses == {}
    assert counts.leaves == Counter({"leaf (requires grad)": 1, "constant": 1})
    assert counts.step_parameter is None and "per step" not in viz.summary(loss)


def test_params_may_be_a_module_a_dict_or_pairs():
    loss, params = three_step_graph()
    for given in (params, list(params.items())):
        assert viz.graph_counts(loss, given).parameter_uses == {"W": 3, "U": 3}
    with pytest.raises(TypeError, match="params must be"):
        viz.to_dot(loss, [params["W"]])
    with pytest.raises(TypeError, match="Tensor"):
        viz.summary(np.ones(2))


def test_op_names_come_from_the_ops():
    """Each op's ``Op.name``: mean has its own name, a number exponent is "pow", split pieces are
    "getitem", and a user's own ``tr.ops.Op`` shows under the name it was given."""
    a = tr.Tensor(np.ones((2, 2)), requires_grad=True)
    sine = tr.ops.Op("sine", lambda ctx, x: np.sin(x), lambda g, out, ctx, x: (g * np.cos(x),))
    made = (a * a, a @ a, a.relu(), a.mean(), a.sum(), a[0], a ** 2, a.reshape(4), a.split(1)[0], sine(None, a))
    assert [viz.op_name(t) for t in made] == [
        "mul", "matmul", "relu", "mean", "sum", "getitem", "pow", "reshape", "getitem", "sine"]
    assert viz.graph_counts(sine(None, a).mean()).ops == Counter(sine=1, mean=1)
    assert "sine\\n(2, 2)" in viz.to_dot(sine(None, a).sum())
    with pytest.raises(ValueError, match="made by no op"):
        viz.op_name(a)
