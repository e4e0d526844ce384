"""viz by time step: ``unroll`` + ``to_dot(steps=...)`` / ``to_text``. The DOT text is parsed here
(Graphviz is not needed); each step's cluster holds the ops of one cell call (a hand count from the
cell's equations), and the names are checked by value: h_t, c_t and the gates against the
hand-derived references' forward caches, the gradients shown against the references' backward."""
import re

import numpy as np
import pytest

import tinygrad_rnn as tr
import tinygrad_rnn.nn as nn
import tinygrad_rnn.viz as viz
from tinygrad_rnn.bptt import gru, lstm, rnn, sequence_backward, sequence_forward

# ops one step makes, from the equations (the input projection is per step in a step-by-step unroll):
#   RNN:  b_ih + b_hh, x W_ih^T + b, h W_hh^T, sum, tanh                                          = 5
#   LSTM: b_ih + b_hh, two linears, their sum, 4 split pieces, σ(f), σ(f)·c, σ(i), tanh(g),
#         σ(i)·tanh(g), c', σ(o), tanh(c'), h'                                                     = 17
#   GRU:  x W_ih^T + b_ih, 3 pieces, h W_hh^T + b_hh, 3 pieces, 2 adds + 2 sigmoids (r, z),
#         r·(h part), add, tanh (n), h - n, z·(h - n), n + z·(h - n)                               = 18
OPS_PER_STEP = {"RNN": 5, "LSTM": 17, "GRU": 18}
GATES = {"RNN": set(), "LSTM": {"i", "f", "g", "o", "σ(i)", "σ(f)", "tanh(g)", "σ(o)"},
         "GRU": {"x W_ir^T + b_ir", "x W_iz^T + b_iz", "x W_in^T + b_in", "h W_hr^T + b_hr", "h W_hz^T + b_hz",
                 "h W_hn^T + b_hn", "r", "z", "n"}}
REFERENCES = {"RNN": rnn.reference, "LSTM": lstm.reference, "GRU": gru.reference}


def layer_and_input(kind, steps=3, batch=1, seed=0):
    layer = getattr(nn, kind)(2, 2, dtype=np.float64)
    rng = np.random.default_rng(seed)
    for param in layer.parameters():
        param.data[...] = rng.uniform(-1, 1, param.shape)
    return layer, rng.standard_normal((steps, batch, 2))


def parse(text):
    """{vertex id: (label lines, attributes)}, {vertex id: cluster step or None}, edges, cluster labels."""
    vertices, step_of, clusters, edges, current = {}, {}, {}, [], None
    for line in text.splitlines():
        opened = re.match(r"\s*subgraph cluster_(\d+) \{$", line)
        if opened:
            current = int(opened.group(1))
            continue
        if line.strip() == "}":
            current = None
            continue
        label = re.match(r'\s*label="([^"]*)";$', line)
        if label and current is not None:
            clusters[current] = label.group(1)
            continue
        vertex = re.match(r'\s*(n\d+) \[label="((?:\\.|[^"\\])*)"(.*)\];$', line)
        if vertex:
            vertices[vertex.group(1)] = (vertex.group(2).split("\\n"), vertex.group(3))
            step_of[vertex.group(1)] = current
            continue
        edge = re.match(r"\s*(n\d+) -> (n\d+);$", line)
        if edge:
            edges.append(edge.groups())
    assert text.startswith("digraph") and text.rstrip().endswith("}")
    for a, b in edges:
        assert a in vertices and b in vertices
    return vertices, step_of, edges, clusters


def title(lines):
    """The name of a vertex: its first label line without the op (``h_0 = tanh`` -> ``h_0``)."""
    return lines[0].split(" = ")[0]


def numbers(lines, what):
    (line,) = [line for line in lines if line.startswith(what + " ")]
    return np.array([float(v) for v in re.findall(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?", line[len(what):])])


def drawn(kind, steps=3, batch=1, show_values=True):
    layer, x = layer_and_input(kind, steps, batch)
    record = viz.unroll(layer, x)
    loss = (record.outputs * record.outputs).sum()
    loss.backward()
    return layer, x, record, parse(viz.to_dot(loss, layer, steps=record, show_values=show_values))


def reference_run(kind, layer, x):
    """(step caches, dh (T, N, H) = ∂L/∂h_t) of the hand-derived reference for L = Σ outputs²."""
    params = {name: getattr(layer, name + "_l0").data for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
    reference = REFERENCES[kind]()
    outputs, _, cache = sequence_forward(reference, x, None, params)
    grads = sequence_backward(reference, 2 * outputs, None, cache, per_step=True)
    return cache.steps, outputs, grads


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_each_step_is_a_cluster_with_one_cell_calls_ops(kind):
    layer, x, record, (vertices, step_of, edges, clusters) = drawn(kind)
    assert clusters == {0: "t = 0", 1: "t = 1", 2: "t = 2"}
    one_call = layer_and_input(kind)[0]
    cell = nn.__dict__[kind + "Cell"](2, 2, dtype=np.float64)
    for name, param in one_call.named_parameters():
        getattr(cell, name.removesuffix("_l0")).data[...] = param.data
    counted = viz.graph_counts(cell(tr.Tensor(x[0]))[0] if kind == "LSTM" else cell(tr.Tensor(x[0])))
    assert sum(counted.ops.values()) == OPS_PER_STEP[kind]  # the hand count is one cell call's graph
    for t in range(3):
        inside = [v for v, s in step_of.items() if s == t]
        ops = [v for v in inside if "shape=ellipse" not in vertices[v][1]]
        assert len(ops) == OPS_PER_STEP[kind]
        assert [title(vertices[v][0]) for v in inside if "shape=ellipse" in vertices[v][1]] == [f"x_{t}"]
    outside_ops = [title(vertices[v][0]) for v, s in step_of.items() if s is None
                   and "shape=ellipse" not in vertices[v][1]
                   and not any(line.startswith("parameter") for line in vertices[v][0])]
    assert outside_ops == ["stack", "mul", "sum"]  # the loss, after the steps


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_states_inputs_and_gates_are_named_and_hold_the_references_values(kind):
    layer, x, record, (vertices, step_of, edges, _) = drawn(kind)
    caches, outputs, grads = reference_run(kind, layer, x)
    by_name = {}
    for v, (lines, _) in vertices.items():
        by_name.setdefault((title(lines), step_of[v]), []).append(lines)
    initial = ["h_{-1}", "c_{-1}"] if kind == "LSTM" else ["h_{-1}"]
    for name in initial:
        (lines,) = by_name[(name, None)]
        assert lines[2] == "initial state" and np.all(numbers(lines, "data") == 0)
    for t in range(3):
        names = {name for name, s in by_name if s == t}
        states = {f"h_{t}", f"x_{t}"} | ({f"c_{t}"} if kind == "LSTM" else set())
        assert names >= states | GATES[kind]
        (h,) = by_name[(f"h_{t}", t)]
        assert np.allclose(numbers(h, "data"), outputs[t].ravel(), rtol=1e-3, atol=1e-4)
        assert np.allclose(numbers(h, "grad"), grads.dh[t].ravel(), rtol=1e-3, atol=1e-4)
        (x_t,) = by_name[(f"x_{t}", t)]
        assert np.allclose(numbers(x_t, "data"), x[t].ravel(), rtol=1e-3, atol=1e-4)
        cache = caches[t]
        expected = {"LSTM": lambda: {"σ(i)": cache.i, "σ(f)": cache.f, "tanh(g)": cache.g, "σ(o)": cache.o},
                    "GRU": lambda: {"r": cache.r, "z": cache.z, "n": cache.n, "h W_hn^T + b_hn": cache.p_hn},
                    "RNN": dict}[kind]()
        for gate, value in expected.items():
            (lines,) = by_name[(gate, t)]
            assert np.allclose(numbers(lines, "data"), value.ravel(), rtol=1e-3, atol=1e-4), gate
        if kind == "LSTM":
            # the reference's dc[t] comes from step t+1 only; c_t's own use in h_t = σ(o) tanh(c_t) adds the rest
            (c,) = by_name[(f"c_{t}", t)]
            total = grads.dc[t] + grads.dh[t] * cache.o * (1 - cache.tanh_c_new ** 2)
            assert np.allclose(numbers(c, "grad"), total.ravel(), rtol=1e-3, atol=1e-4)


def test_shown_values_are_the_tensors_data_and_grad():
    layer, x, record, (vertices, _, _, _) = drawn("LSTM")
    for name, param in layer.named_parameters():
        (lines,) = [lines for lines, _ in vertices.values() if lines[0] == name]
        assert np.allclose(numbers(lines, "data"), _shown(param.data), rtol=1e-3, atol=1e-4)
        assert np.allclose(numbers(lines, "grad"), _shown(param.grad), rtol=1e-3, atol=1e-4)
    for node, tensor in record.tensors.items():
        assert tensor.grad is not None  # every recorded tensor kept its gradient
    (root,) = [lines for lines, attributes in vertices.values() if lines[0] == "sum"]
    assert numbers(root, "data")[0] == pytest.approx(float((record.outputs.data ** 2).sum()), rel=1e-3)


def _shown(array):
    """The entries viz shows of an array with more than 6: the first 3 and the last 3."""
    flat = np.asarray(array).ravel()
    return flat if flat.size <= 6 else np.concatenate([flat[:3], flat[-3:]])


def test_without_show_values_no_numbers_and_without_steps_no_clusters():
    layer, x = layer_and_input("RNN")
    record = viz.unroll(layer, x)
    loss = record.outputs.sum()
    text = viz.to_dot(loss, layer, steps=record)
    assert "data " not in text and "cluster_2" in text
    plain = viz.to_dot(loss, layer)
    assert "cluster" not in plain and "h_0" not in plain
    assert len(parse(plain)[0]) == len(parse(text)[0])  # an RNN step takes x_t once, and h_{-1} is taken once


def test_text_rendering_lists_the_steps_in_order():
    layer, x = layer_and_input("LSTM")
    record = viz.unroll(layer, x)
    loss = record.outputs.sum()
    loss.backward()
    text = viz.to_text(loss, layer, steps=record, show_values=True)
    headers = [line for line in text.splitlines() if not line.startswith(" ")]
    assert headers[1:] == ["leaves:", "t = 0:", "t = 1:", "t = 2:", "ops after the steps:"]
    assert "53 op outputs in 3 time steps" in headers[0]  # 3 steps x 17, stack and sum
    steps = text.split("t = 1:")[1].split("t = 2:")[0]
    for name in ("x_1 (1, 2) input", "h_1 = mul (1, 2)", "c_1 = add (1, 2)", "σ(f) = sigmoid (1, 2) <- ", "h_0"):
        assert name in steps
    assert "weight_hh_l0 (8, 2) parameter, used 3x (shared)  data [" in text
    assert "h_{-1} (1, 2) initial state  data [0, 0]" in text
    assert "[" in viz.to_text(loss) and "t = 0" not in viz.to_text(loss)


def test_the_accelerator_setting_does_not_change_the_unroll():
    layer, x = layer_and_input("GRU")
    texts = []
    for enabled in (True, False):
        with tr.fast(enabled):
            record = viz.unroll(layer, x)
            texts.append(viz.to_dot(record.outputs.sum(), layer, steps=record))
    assert texts[0] == texts[1] and "recurrent_loop" not in texts[0]


def test_a_custom_cell_and_layouts():
    class Leaky(nn.Cell):
        def __init__(self):
            super().__init__()
            self.hidden_size, self.W = 2, nn.Parameter(np.eye(2) * 0.5)

        def forward(self, x, h):
            return h * 0.5 + (x + h @ self.W).tanh()

    cell = Leaky()
    record = viz.unroll(nn.Recurrent(cell, batch_first=True), np.ones((1, 4, 2)))
    assert record.outputs.shape == (1, 4, 2) and record.steps == 4
    vertices, step_of, _, clusters = parse(viz.to_dot(record.outputs.sum(), cell, steps=record))
    assert len(clusters) == 4
    for t in range(4):
        names = [title(vertices[v][0]) for v, s in step_of.items() if s == t]
        assert f"h_{t}" in names and f"x_{t}" in names
    unbatched = viz.unroll(nn.RNN(2, 2, dtype=np.float64), np.ones((3, 2)))
    assert unbatched.outputs.shape == (3, 2)


def test_an_initial_state_that_requires_grad_is_named_h_minus_one():
    layer, x = layer_and_input("RNN")
    h0 = tr.Tensor(np.full((1, 2), 0.3), requires_grad=True)
    record = viz.unroll(layer, x, state=h0)
    record.outputs.sum().backward()
    text = viz.to_text(record.outputs.sum(), layer, steps=record, show_values=True)
    assert "h_{-1} (1, 2) initial state  data [0.3, 0.3]  grad [" in text


def test_bad_arguments():
    layer, x = layer_and_input("RNN")
    loss = layer(tr.Tensor(x))[0].sum()
    with pytest.raises(TypeError, match="steps must be the Unrolled record"):
        viz.to_dot(loss, layer, steps=3)
    with pytest.raises(ValueError, match="single-layer"):
        viz.unroll(nn.RNN(2, 2, num_layers=2, dtype=np.float64), x)
    with pytest.raises(TypeError, match="dtype float32"):
        viz.unroll(layer, x.astype(np.float32))
    with pytest.raises(ValueError, match="got shape"):
        viz.unroll(layer, x[0, 0])
