"""tinygrad_rnn.export against PyTorch's own autograd: exported modules compute what ours compute.

For the built-in layers (exported to torch's fused RNN/LSTM/GRU, lengths by packed sequences) over the
grid layers x directions x batch_first x bias x lengths, and for custom cells (exported by tracing
the ops they record) as a cell, a Recurrent and a StackedRecurrent, in float64: the outputs, final
states and the gradients of the input, the initial state and every parameter for

    L = sum_k sum(output_k * G_k)        (every returned tensor, random upstream G_k)

agree to 1e-10 (``tr.rel_error_norm``, over each whole tensor, as tests/test_against_torch.py).
Weights round-trip exactly; an op with no torch counterpart, a step that reads values or draws
random numbers are refused with errors naming the cause.
"""
import importlib.util
import itertools
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import tinygrad_rnn as tr  # noqa: E402
import tinygrad_rnn.nn as nn  # noqa: E402
from tinygrad_rnn import ops  # noqa: E402
from tinygrad_rnn.export import ExportError, UnsupportedOpError, from_torch, to_torch  # noqa: E402
from tinygrad_rnn.export.torch_ops import TORCH_OPS  # noqa: E402
from tinygrad_rnn.models import CharLM, SentimentClassifier  # noqa: E402

TOLERANCE = 1e-10
EXAMPLE = os.path.join(os.path.dirname(__file__), os.pardir, "examples", "custom_cell.py")


def _load_example():
    spec = importlib.util.spec_from_file_location("custom_cell_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MinimalGatedUnit = _load_example().MinimalGatedUnit


class PeepholeCell(nn.Cell):
    """A tuple-state cell with a learned initial state and its own output, using many of the engine's ops:

        a = [x, h] W^T + b  (N, 3H);   i, f, g = chunk(a, 3)
        c' = sigmoid(f + p * c) * c + sigmoid(i) * clip(g, -2, 2)
        s  = (relu(mean_j c'_j) + 1) ** 0.5                       (N, 1)
        h' = tanh(c') s + where(c' > 0, c', -c') / 4 - 0.01 exp(max_j |c'_j|)
        output = stack([h', c'], axis=2).sum(axis=2) = h' + c'   (N, H)
        init_state(N) = (broadcast_to(h0, (N, H)), zeros (N, H))  a learned initial h
    """

    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        rng = np.random.default_rng(7)
        self.weight = nn.Parameter(rng.uniform(-0.5, 0.5, (3 * hidden_size, input_size + hidden_size)))
        self.bias = nn.Parameter(rng.uniform(-0.5, 0.5, (3 * hidden_size,)))
        self.peephole = nn.Parameter(rng.uniform(-0.5, 0.5, (hidden_size,)))
        self.h0 = nn.Parameter(rng.uniform(-0.5, 0.5, (1, hidden_size)))

    def init_state(self, batch_size):
        zeros = np.zeros((batch_size, self.hidden_size))
        return self.h0.broadcast_to((batch_size, self.hidden_size)), tr.Tensor(zeros)

    def forward(self, x, state):
        h, c = state
        a = tr.concat([x, h], axis=1) @ self.weight.T + self.bias
        i, f, g = a.chunk(3, axis=1)
        c = (f + self.peephole * c).sigmoid() * c + i.sigmoid() * g.clip(-2, 2)
        scale = (c.mean(axis=1, keepdims=True).relu() + 1.0) ** 0.5
        h = c.tanh() * scale + tr.where(c > 0, c, -c) / 4 - c.abs().amax(axis=1, keepdims=True).exp() * 0.01
        return h, c

    def output(self, state):
        return tr.stack(list(state), axis=2).sum(axis=2)


def make_cell(kind, input_size, hidden_size):
    """Our custom cells, and a built-in cell traced as any other (a tuple state, project_input + step)."""
    if kind == "lstmcell":
        return nn.LSTMCell(input_size, hidden_size, dtype=np.float64)
    return MinimalGatedUnit(input_size, hidden_size, dtype=np.float64) if kind == "mgu" else \
        PeepholeCell(input_size, hidden_size)


def flat(result):
    """Every tensor a module returned, in order (nested tuples and lists flattened)."""
    if isinstance(result, (tuple, list)):
        return [t for item in result for t in flat(item)]
    return [result]


def compare(ours, theirs, call, arrays, seed=0):
    """``call(module, leaves, lib)`` on both (leaves: one per array, requiring grad), the same upstream
    gradients on every returned tensor; every output, input gradient and parameter gradient within 1e-10."""
    ours.zero_grad()
    theirs.zero_grad()
    our_leaves = [tr.Tensor(a.copy(), requires_grad=True) for a in arrays]
    torch_leaves = [torch.tensor(a, requires_grad=True) for a in arrays]
    our_out, torch_out = flat(call(ours, our_leaves, tr)), flat(call(theirs, torch_leaves, torch))
    assert len(our_out) == len(torch_out)
    rng = np.random.default_rng(seed)
    upstream = [rng.normal(size=o.shape) for o in our_out]
    sum(((o * g).sum() for o, g in zip(our_out, upstream)), tr.Tensor(0.0, dtype=np.float64)).backward()
    sum((o * torch.from_numpy(g)).sum() for o, g in zip(torch_out, upstream)).backward()
    for k, (o, t) in enumerate(zip(our_out, torch_out)):
        assert_close(o.data, t, f"output {k}")
    for k, (o, t) in enumerate(zip(our_leaves, torch_leaves)):
        assert_gradient(o.grad, t.grad, f"gradient of input {k}")
    theirs_named = dict(theirs.named_parameters())
    assert sorted(theirs_named) == sorted(name for name, _ in ours.named_parameters())
    for name, param in ours.named_parameters():
        assert_gradient(param.grad, theirs_named[name].grad, f"gradient of {name}")


def assert_gradient(ours, theirs, what):
    """Gradients within 1e-10, or None in both (nothing reached that tensor)."""
    assert (ours is None) == (theirs is None), f"{what}: {ours} vs torch {theirs}"
    if ours is not None:
        assert_close(ours, theirs, what)


def assert_close(ours, theirs, what):
    theirs = theirs.detach().numpy()
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape}, torch {theirs.shape}"
    error = tr.rel_error_norm(ours, theirs)
    assert error < TOLERANCE, f"{what}: relative error {error:.2e}"


def sequence(steps, batch, size, batch_first, seed=1):
    shape = (batch, steps, size) if batch_first else (steps, batch, size)
    return np.random.default_rng(seed).normal(size=shape)


# ---------------------------------------------------------------- built-in layers -> torch's fused layers
LAYERS = {"rnn_tanh": (nn.RNN, {"nonlinearity": "tanh"}, 1), "rnn_relu": (nn.RNN, {"nonlinearity": "relu"}, 1),
          "lstm": (nn.LSTM, {}, 2), "gru": (nn.GRU, {}, 1)}


@pytest.mark.parametrize("kind,num_layers,bidirectional,batch_first,bias,ragged",
                         list(itertools.product(LAYERS, (1, 2), (False, True), (False, True), (False, True),
                                                (False, True))))
def test_builtin_layers_equal_torch_fused(kind, num_layers, bidirectional, batch_first, bias, ragged):
    layer, options, n_parts = LAYERS[kind]
    ours = layer(2, 3, num_layers=num_layers, bias=bias, batch_first=batch_first, bidirectional=bidirectional,
                 dtype=np.float64, **options)
    theirs = to_torch(ours)
    assert isinstance(theirs, {nn.RNN: torch.nn.RNN, nn.LSTM: torch.nn.LSTM, nn.GRU: torch.nn.GRU}[layer])
    assert list(theirs.state_dict()) == list(ours.state_dict())
    lengths = [4, 2, 3] if ragged else None
    rng = np.random.default_rng(2)
    hx = [rng.normal(size=(num_layers * (1 + bidirectional), 3, 3)) for _ in range(n_parts)]

    def call(module, leaves, lib):
        x, *states = leaves
        return module(x, states[0] if n_parts == 1 else tuple(states), lengths=lengths)

    compare(ours, theirs, call, [sequence(4, 3, 2, batch_first), *hx])


@pytest.mark.parametrize("kind", list(LAYERS))
def test_builtin_unbatched_and_default_state(kind):
    layer, options, _ = LAYERS[kind]
    ours = layer(2, 3, num_layers=2, bidirectional=True, dtype=np.float64, **options)
    theirs = to_torch(ours)
    compare(ours, theirs, lambda module, leaves, lib: module(leaves[0]), [sequence(4, 1, 2, False)[:, 0]])
    compare(ours, theirs, lambda module, leaves, lib: module(leaves[0], lengths=[3]), [sequence(4, 1, 2, False)[:, 0]])


def test_sigmoid_rnn_is_exported_by_tracing():
    ours = nn.RNN(2, 3, nonlinearity="sigmoid", num_layers=2, dtype=np.float64)
    theirs = to_torch(ours)
    assert list(theirs.state_dict()) == list(ours.state_dict())
    compare(ours, theirs, lambda module, leaves, lib: module(leaves[0], lengths=[4, 1, 3]),
            [sequence(4, 3, 2, False)])


# ---------------------------------------------------------------- custom cells, traced
@pytest.mark.parametrize("kind", ["mgu", "peephole"])
def test_custom_cell_step_equals_ours_at_several_batch_sizes(kind):
    ours = make_cell(kind, 3, 4)
    theirs = to_torch(ours)
    assert list(theirs.state_dict()) == list(ours.state_dict())
    n_parts = 2 if kind == "peephole" else 1
    for batch in (2, 5, 2, 1):  # each batch size is its own recording; the first is reused at the end
        rng = np.random.default_rng(batch)
        states = [rng.normal(size=(batch, 4)) for _ in range(n_parts)]

        def call(module, leaves, lib):
            x, *parts = leaves
            return module(x, parts[0] if n_parts == 1 else tuple(parts))

        compare(ours, theirs, call, [rng.normal(size=(batch, 3)), *states], seed=batch)
    compare(ours, theirs, lambda module, leaves, lib: module(leaves[0]), [np.ones(3)])  # unbatched, default state


@pytest.mark.parametrize("kind,reverse,batch_first,ragged,given_state",
                         list(itertools.product(["mgu", "peephole", "lstmcell"], (False, True), (False, True),
                                                (False, True), (False, True))))
def test_custom_recurrent_equals_ours(kind, reverse, batch_first, ragged, given_state):
    ours = nn.Recurrent(make_cell(kind, 3, 4), batch_first=batch_first, reverse=reverse)
    theirs = to_torch(ours)
    assert list(theirs.state_dict()) == list(ours.state_dict())
    lengths = np.array([5, 2, 4]) if ragged else None
    n_parts = 1 if kind == "mgu" else 2
    states = [np.random.default_rng(3 + k).normal(size=(3, 4)) for k in range(n_parts)] if given_state else []

    def call(module, leaves, lib):
        x, *parts = leaves
        state = None if not parts else parts[0] if n_parts == 1 else tuple(parts)
        return module(x, state, lengths=lengths)

    compare(ours, theirs, call, [sequence(5, 3, 3, batch_first), *states])


@pytest.mark.parametrize("kind,bidirectional,batch_first", list(itertools.product(["mgu", "peephole"],
                                                                                  (False, True), (False, True))))
def test_custom_stacked_equals_ours(kind, bidirectional, batch_first):
    ours = nn.StackedRecurrent(lambda size, layer, direction: make_cell(kind, size, 4), 3, 4, num_layers=2,
                               batch_first=batch_first, bidirectional=bidirectional)
    theirs = to_torch(ours)
    assert list(theirs.state_dict()) == list(ours.state_dict())
    n_parts = 2 if kind == "peephole" else 1
    hx = [np.random.default_rng(5 + k).normal(size=(2 * (1 + bidirectional), 3, 4)) for k in range(n_parts)]

    def call(module, leaves, lib):
        x, *parts = leaves
        return module(x, parts[0] if n_parts == 1 else tuple(parts), lengths=[1, 4, 3])

    compare(ours, theirs, call, [sequence(4, 3, 3, batch_first), *hx])
    compare(ours, theirs, lambda module, leaves, lib: module(leaves[0]), [sequence(4, 2, 3, False)[:, 0]])


# ---------------------------------------------------------------- every op has its torch counterpart
def test_every_op_of_the_engine_has_a_torch_counterpart():
    engine_ops = {value.name for value in vars(ops).values() if isinstance(value, ops.Op)} - {ops.CONSTANT.name}
    comparisons = {"less", "less_equal", "greater", "greater_equal", "equal", "not_equal"}
    assert engine_ops | comparisons <= set(TORCH_OPS), sorted(engine_ops | comparisons - set(TORCH_OPS))


class OpsCell(nn.Cell):
    """h' = f(x, h) for the ``step`` given: a cell made to exercise a few ops at a time."""

    def __init__(self, step, hidden_size=4):
        super().__init__()
        self.hidden_size, self.step_function = hidden_size, step
        self.weight = nn.Parameter(np.random.default_rng(11).uniform(0.5, 1.5, (hidden_size, hidden_size)))

    def forward(self, x, h):
        return self.step_function(x, h, self.weight)


OP_STEPS = {
    "arithmetic": lambda x, h, w: ((x - h) * w.sum(axis=0) / (h * h + 1.0) + (-x) ** 2
                                   + (x * x + 1) ** h.abs().clip(0.5, 2)),
    "products": lambda x, h, w: ops.linear(x, w) + ops.matmul(h, w) + ops.linear(x, w, w[0]) + h @ w[0],
    "unary": lambda x, h, w: (x.exp() + (h * h + 1).log() + (x * x + 1).sqrt() + x.relu() + h.sigmoid()).tanh()
    + (h * h).log1p() + x.sin() * h.cos(),
    "reductions": lambda x, h, w: x.mean(axis=0) + h.amax(axis=1, keepdims=True) + x.sum() + w.amax(),
    "shapes": lambda x, h, w: (x.reshape(-1, 2, 2).permute(0, 2, 1).reshape(x.shape) + w[0].broadcast_to(x.shape)
                               + x.transpose(0, 1).T + x.astype(np.float32).astype(np.float64)),
    "indexing": lambda x, h, w: (tr.stack([x[:, 0], h[:, 1]], axis=1).sum(axis=1, keepdims=True) * h[:, [3, 1, 1, 0]]
                                 + tr.concat([x[:, :2], h[:, 2:]], axis=1) + x[np.array([True, False] * 2)][:1]),
    "negative_steps": lambda x, h, w: (x[:, ::-1] * h[::-1] + x[3:0:-2, -1::-3].sum() + h[:, 2::-1][:, :1]
                                       + x[::-1, np.array([0, 3])][:, ::-2]),
    "integers": lambda x, h, w: (h + ((x > 0).astype(np.int64).sum(axis=1, keepdims=True) + 1) / 7 * x
                                 + (x > h).astype(np.int64)[:, :3].mean(axis=1, keepdims=True) * h),
    "comparisons": lambda x, h, w: (tr.where(x < h, x, h) + tr.where(x >= w[0], h, 0.0) + tr.where(x != h, h, x)
                                    + tr.where(x <= h, h, x.detach()) + tr.where(x > 0, x, 1.0)
                                    + tr.where(x == h, x, h)),
}


@pytest.mark.parametrize("name", list(OP_STEPS))
def test_each_op_equals_ours(name):
    ours = OpsCell(OP_STEPS[name])
    theirs = to_torch(ours)
    rng = np.random.default_rng(13)
    compare(ours, theirs, lambda module, leaves, lib: module(*leaves), [rng.normal(size=(4, 4)) for _ in range(2)])


class ModeCell(nn.Cell):
    """A step that depends on the training mode (a deterministic zoneout), x (N, H), h (N, H):

        h' = k h + (1 - k) tanh(h W + x),    k = 0.3 while training, 0.7 in eval mode
    """

    def __init__(self, hidden_size=4):
        super().__init__()
        self.input_size = self.hidden_size = hidden_size
        self.weight = nn.Parameter(np.random.default_rng(3).uniform(-1, 1, (hidden_size, hidden_size)))

    def forward(self, x, h):
        keep = 0.3 if self.training else 0.7
        return keep * h + (1 - keep) * (h @ self.weight + x).tanh()


@pytest.mark.parametrize("make", [ModeCell, lambda: nn.Recurrent(ModeCell()), lambda: nn.StackedRecurrent(
    lambda size, layer, k: ModeCell(), 4, 4, bidirectional=True)])
def test_a_step_that_depends_on_the_mode_follows_the_exported_modules_mode(make):
    ours = make()
    theirs = to_torch(ours)
    x = sequence(3, 2, 4, False) if not isinstance(ours, nn.Cell) else sequence(1, 2, 4, False)[0]
    for training in (True, False, True):  # each mode recorded in its own mode, then kept
        ours.train(training)
        theirs.train(training)
        compare(ours, theirs, lambda module, leaves, lib: module(leaves[0]), [x])
    assert ours.training and all(module.training for module in ours.modules())  # our modes left as they were


@pytest.mark.parametrize("make", [lambda: MinimalGatedUnit(3, 4, dtype=np.float64),
                                  lambda: nn.Recurrent(MinimalGatedUnit(3, 4, dtype=np.float64)),
                                  lambda: nn.StackedRecurrent(lambda size, layer, k: make_cell("mgu", size, 4), 3, 4)])
def test_inputs_and_states_of_another_dtype_are_refused_as_ours(make):
    ours = make()
    theirs = to_torch(ours)
    x = torch.from_numpy(sequence(5, 2, 3, False) if not isinstance(ours, nn.Cell) else np.ones((2, 3)))
    with pytest.raises(TypeError, match="input has dtype torch.float32 but .* parameters have dtype torch.float64"):
        theirs(x.float())
    state = torch.zeros((2, 4) if not isinstance(ours, nn.StackedRecurrent) else (1, 2, 4), dtype=torch.float32)
    with pytest.raises(TypeError, match="state part 0 has dtype torch.float32, expected torch.float64"):
        theirs(x, state)
    with pytest.raises(TypeError, match=r"recorded in float64.*to_torch\(model.float\(\)\)"):
        theirs.float()(x.float())


def test_a_subclass_with_its_own_forward_is_refused_and_one_without_exports():
    class Doubled(nn.Recurrent):
        def forward(self, x, state=None, lengths=None):
            outputs, state = super().forward(x, state, lengths)
            return outputs * 2, state

    class Named(nn.LSTM):
        """Nothing but a name of its own."""

    with pytest.raises(ExportError, match="Doubled: it overrides forward of Recurrent"):
        to_torch(Doubled(MinimalGatedUnit(3, 4, dtype=np.float64)))
    ours = Named(2, 3, dtype=np.float64)
    theirs = to_torch(ours)
    assert isinstance(theirs, torch.nn.LSTM)
    compare(ours, theirs, lambda module, leaves, lib: module(leaves[0], lengths=[4, 1, 2]), [sequence(4, 3, 2, False)])


def test_a_parameter_shared_by_layers_stays_one_parameter():
    """Cells that share a Parameter (one recurrent matrix tied across layers and directions): ours counts it
    once and adds every use's gradient into it; so must the export, or training would untie it."""
    shared = nn.Parameter(np.random.default_rng(4).uniform(-0.5, 0.5, (4, 4)))

    def tied_cell(size, layer, direction):
        cell = ModeCell()
        cell.weight = shared
        return cell
    ours = nn.StackedRecurrent(tied_cell, 4, 4, num_layers=3)
    theirs = to_torch(ours)
    assert list(theirs.state_dict()) == list(ours.state_dict()) == ["weight_l0"]
    compare(ours, theirs, lambda module, leaves, lib: module(leaves[0], lengths=[3, 1]), [sequence(3, 2, 4, False)])


def test_bad_inputs_get_our_errors():
    exported = to_torch(nn.Recurrent(MinimalGatedUnit(3, 4, dtype=np.float64)))
    with pytest.raises(ValueError, match="no time steps"):
        exported(torch.zeros(0, 2, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"input must be \(N, D\) or \(D,\), got shape \(2, 2, 3\)"):
        exported.cell(torch.zeros(2, 2, 3, dtype=torch.float64))


def test_an_op_with_no_torch_counterpart_is_named():
    softsign = ops.Op("softsign", lambda ctx, a: a / (1 + np.abs(a)), lambda g, out, ctx, a: (g / (1 + abs(a)) ** 2,))
    cell = OpsCell(lambda x, h, w: softsign(None, x @ w + h))
    assert cell(tr.Tensor(np.ones((2, 4)))).shape == (2, 4)  # the cell itself works here
    with pytest.raises(UnsupportedOpError, match="OpsCell uses the op 'softsign'"):
        to_torch(cell)(torch.ones(2, 4, dtype=torch.float64))


def test_steps_a_trace_cannot_capture_are_refused():
    reads = OpsCell(lambda x, h, w: x * float(h.sum().item()))
    with pytest.raises(ExportError, match=r"tensor.item\(\)"):
        to_torch(reads)(torch.ones(2, 4, dtype=torch.float64))
    branches = OpsCell(lambda x, h, w: x + h if x.data.sum() > 0 else x - h)  # .data: invisible to the seam
    with pytest.raises(ExportError, match="records different ops"):
        to_torch(branches)(torch.ones(2, 4, dtype=torch.float64))
    dropout = OpsCell(lambda x, h, w: tr.functional.dropout(x, 0.5) + h)
    with pytest.raises(ExportError, match="records different ops"):
        to_torch(dropout)(torch.ones(2, 4, dtype=torch.float64))
    other = nn.Parameter(np.ones(4))
    foreign = OpsCell(lambda x, h, w: x * other + h)
    with pytest.raises(ExportError, match="not one of its parameters"):
        to_torch(foreign)(torch.ones(2, 4, dtype=torch.float64))
    fixed = OpsCell(lambda x, h, w: x * tr.Tensor(np.ones(4)) + h)
    with pytest.raises(ExportError, match="made a Tensor from an array"):
        to_torch(fixed)(torch.ones(2, 4, dtype=torch.float64))


def test_unexportable_module_is_named():
    class Mine(nn.Module):
        pass
    with pytest.raises(ExportError, match="cannot export a Mine"):
        to_torch(Mine())


# ---------------------------------------------------------------- weights both ways
@pytest.mark.parametrize("make", [lambda: nn.LSTM(3, 4, num_layers=2, bidirectional=True),
                                  lambda: nn.StackedRecurrent(lambda d, layer, k: PeepholeCell(d, 4), 3, 4, 2),
                                  lambda: CharLM(7, 8, cell=MinimalGatedUnit, num_layers=2)])
def test_weights_round_trip_exactly(make):
    ours = make()
    theirs = to_torch(ours)
    for name, value in theirs.state_dict().items():
        assert np.array_equal(value.numpy(), ours.state_dict()[name])
        assert value.numpy().dtype == ours.state_dict()[name].dtype
    with torch.no_grad():  # "training": new values in torch, then brought back
        for param in theirs.parameters():
            param.mul_(-0.5).add_(0.125)
    fresh = make()
    assert from_torch(theirs, fresh) is fresh
    for name, value in theirs.state_dict().items():
        assert np.array_equal(fresh.state_dict()[name], value.numpy())


# ---------------------------------------------------------------- layers and models
def test_layers_and_models_equal_ours():
    linear = nn.Linear(3, 2, dtype=np.float64)
    compare(linear, to_torch(linear), lambda module, leaves, lib: module(leaves[0]), [np.ones((4, 5, 3))])
    embedding = nn.Embedding(5, 3, dtype=np.float64)
    ids = np.array([[0, 4, 4], [1, 2, 0]])
    theirs = to_torch(embedding)
    ours_out, torch_out = embedding(ids), theirs(torch.from_numpy(ids))
    ours_out.backward(np.ones((2, 3, 3)))
    torch_out.backward(torch.ones(2, 3, 3, dtype=torch.float64))
    assert_close(ours_out.data, torch_out, "embedding")
    assert_close(embedding.weight.grad, theirs.weight.grad, "embedding gradient")
    dropout = to_torch(nn.Dropout(0.3).eval())
    assert isinstance(dropout, torch.nn.Dropout) and dropout.p == 0.3 and not dropout.training
    for cell in ("gru", lambda size, hidden: MinimalGatedUnit(size, hidden, dtype=np.float64)):
        model = CharLM(6, 4, cell=cell, num_layers=2, dtype=np.float64)
        exported = to_torch(model)
        ids = np.array([[1, 2], [3, 0], [5, 5]])
        logits, state = model(ids)
        torch_logits, torch_state = exported(torch.from_numpy(ids))
        assert_close(logits.data, torch_logits, "CharLM logits")
        assert_close(flat(state)[0].data, flat(torch_state)[0], "CharLM state")
        classifier = SentimentClassifier(6, 3, 4, cell=cell, dtype=np.float64)
        exported = to_torch(classifier)
        assert_close(classifier(ids.T, lengths=[2, 3]).data, exported(torch.from_numpy(ids.T), lengths=[2, 3]),
                     "SentimentClassifier logits")


def test_scatter_equals_ours():
    """scatter (getitem's backward as an op, met under create_graph) against the op's own forward."""
    g = np.arange(6.0).reshape(3, 2)
    for index, basic in [((slice(1, 4), slice(None)), True), (np.array([0, 2, 0]), False)]:
        ctx = (index, basic, (5, 2))
        ours = ops.SCATTER.forward(ctx, g)
        theirs = TORCH_OPS["scatter"](ctx)(torch.from_numpy(g))
        assert np.array_equal(ours, theirs.numpy())


# ---------------------------------------------------------------- ordinary PyTorch
@pytest.mark.parametrize("make", [lambda: nn.Recurrent(PeepholeCell(3, 4), reverse=True),
                                  lambda: nn.StackedRecurrent(lambda d, layer, k: PeepholeCell(d, 4), 3, 4, 2,
                                                              bidirectional=True),
                                  lambda: nn.LSTM(3, 4, dtype=np.float64)])
def test_nothing_pins_the_cpu(make):
    """On the meta device (no data: any CPU tensor mixed in is an error) the exported modules run, the
    traced ones with lengths too (torch's own pad_packed_sequence copies lengths out, so not the fused)."""
    exported = to_torch(make()).to("meta")
    x = torch.empty(5, 2, 3, dtype=torch.float64, device="meta")
    for lengths in (None, [5, 3]) if not isinstance(exported, torch.nn.LSTM) else (None,):
        output, state = exported(x, lengths=lengths)
        assert output.device.type == "meta" and all(part.device.type == "meta" for part in flat(state))


@pytest.mark.slow
def test_torch_compile_gives_the_same_numbers():
    """torch.compile (the aot_eager backend: no C++ compiler needed) of an exported custom Recurrent."""
    ours = nn.Recurrent(PeepholeCell(3, 4))
    exported = to_torch(ours)
    compiled = torch.compile(exported, backend="aot_eager")
    compare(ours, exported, lambda module, leaves, lib: (compiled if lib is torch else module)(leaves[0]),
            [sequence(2, 2, 3, False)])


class AttentiveCell(nn.Cell):
    """h' = softmax(h W^T + x U^T) along the hidden axis, mixed with tanh: softmax inside a step."""

    def __init__(self, input_size, hidden_size):
        super().__init__()
        rng = np.random.default_rng(7)
        self.hidden_size = hidden_size
        self.weight_hh = nn.Parameter(rng.normal(size=(hidden_size, hidden_size)))
        self.weight_ih = nn.Parameter(rng.normal(size=(hidden_size, input_size)))

    def forward(self, x, h):
        scores = h @ self.weight_hh.T + x @ self.weight_ih.T
        return tr.functional.softmax(scores * 3.0, axis=-1) * scores.tanh() + tr.functional.log_softmax(scores) * 0.1


def test_a_cell_using_softmax_exports_and_equals_ours():
    """softmax's shift is a detached amax (an op), so the step's recording holds it and torch runs it."""
    ours = nn.Recurrent(AttentiveCell(3, 4))
    compare(ours, to_torch(ours), lambda m, leaves, lib: m(leaves[0]), [sequence(5, 2, 3, False)])
