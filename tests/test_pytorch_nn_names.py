"""PyTorch's nn names (issue 17, item 3): Sequential, ModuleList, ModuleDict, Module.double/float/to/apply/
requires_grad_/zero_grad(set_to_none)/repr, the activation and loss modules, nn.utils' clipping.

Each is run side by side with torch in float64 where torch is installed (values, gradients, names and
reprs equal), and checked without torch against a closed form written here in NumPy.
"""
import collections

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinygrad_rnn as tr
import tinygrad_rnn.nn as nn
from tinygrad_rnn.random import manual_seed

FEW = settings(max_examples=10, deadline=None)


def mlp():
    """Linear(3, 4) -> Tanh -> Linear(4, 2), float64."""
    return nn.Sequential(nn.Linear(3, 4, dtype=np.float64), nn.Tanh(), nn.Linear(4, 2, dtype=np.float64))


def torch_copy(ours, torch_module):
    """``torch_module`` with ``ours``' weights (the state_dict keys are the same)."""
    torch = pytest.importorskip("torch")
    torch_module.double().load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    return torch_module


# ===================================================================== Sequential
@FEW
@given(batch=st.lists(st.integers(1, 3), min_size=0, max_size=2), seed=st.integers(0, 2**31))
def test_sequential_chains_its_modules_as_the_composition_by_hand(batch, seed):
    manual_seed(seed)
    net = mlp()
    x = np.random.default_rng(seed).standard_normal((*batch, 3))
    first, last = net[0], net[-1]
    hidden = np.tanh(x @ first.weight.data.T + first.bias.data)
    np.testing.assert_allclose(net(tr.Tensor(x)).data, hidden @ last.weight.data.T + last.bias.data, rtol=1e-12)
    assert list(net.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert len(net) == 3 and [type(m).__name__ for m in net] == ["Linear", "Tanh", "Linear"]


@FEW
@given(batch=st.integers(1, 4), seed=st.integers(0, 2**31))
def test_sequential_equals_torch_in_values_and_gradients(batch, seed):
    torch = pytest.importorskip("torch")
    manual_seed(seed)
    ours = mlp()
    theirs = torch_copy(ours, torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2)))
    assert list(ours.state_dict()) == list(theirs.state_dict())
    x = np.random.default_rng(seed).standard_normal((batch, 3))
    y, their_y = ours(tr.Tensor(x)), theirs(torch.from_numpy(x))
    np.testing.assert_allclose(y.data, their_y.detach().numpy(), rtol=1e-12, atol=1e-14)
    (y * y).sum().backward()
    (their_y * their_y).sum().backward()
    for (name, p), q in zip(ours.named_parameters(), theirs.parameters()):
        np.testing.assert_allclose(p.grad, q.grad.numpy(), rtol=1e-12, atol=1e-14, err_msg=name)


def test_sequential_from_an_ordered_dict_keeps_the_names_and_indexes_by_position():
    tanh, relu = nn.Tanh(), nn.ReLU()
    net = nn.Sequential(collections.OrderedDict(encoder=nn.Linear(2, 3), act=tanh, out=relu))
    assert list(net.state_dict()) == ["encoder.weight", "encoder.bias"]
    assert net[1] is tanh and net[-1] is relu and net.act is tanh
    part = net[1:]
    assert isinstance(part, nn.Sequential) and list(part._modules) == ["act", "out"]
    with pytest.raises(IndexError, match="index 3 is out of range for 3 modules"):
        net[3]
    with pytest.raises(TypeError, match="indices must be ints or slices"):
        net["act"]


def test_sequential_append_insert_and_del_renumber_as_torch():
    a, b, c, d = nn.Tanh(), nn.ReLU(), nn.Sigmoid(), nn.Identity()
    net = nn.Sequential(a, b).append(c)
    net.insert(1, d)
    assert list(net) == [a, d, b, c] and list(net._modules) == ["0", "1", "2", "3"]
    del net[0]
    assert list(net) == [d, b, c] and list(net._modules) == ["0", "1", "2"] and not hasattr(net, "3")
    net[0] = a
    assert list(net) == [a, b, c]
    with pytest.raises(TypeError, match="element 1 is int 3, not a Module"):
        nn.Sequential(a, 3)


def test_sequential_keys_equal_torchs_after_the_same_edits():
    torch = pytest.importorskip("torch")
    ours = nn.Sequential(nn.Linear(2, 2), nn.Tanh(), nn.Linear(2, 1))
    theirs = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Tanh(), torch.nn.Linear(2, 1))
    for net, make in ((ours, nn.Linear), (theirs, torch.nn.Linear)):
        del net[1]
        net.append(make(1, 3))
        net.insert(0, make(2, 2))
    assert list(ours.state_dict()) == list(theirs.state_dict())


@pytest.mark.parametrize("index", [-5, -4, 4, 9])
def test_insert_out_of_range_is_an_index_error_as_torchs(index):
    """torch accepts -len <= index <= len; beyond that nothing is inserted (never a silent append)."""
    for make in (lambda: nn.Sequential(nn.Tanh(), nn.ReLU(), nn.Sigmoid()),
                 lambda: nn.ModuleList([nn.Tanh(), nn.ReLU(), nn.Sigmoid()])):
        net = make()
        before = list(net)
        with pytest.raises(IndexError, match=f"index {index} is out of range"):
            net.insert(index, nn.Identity())
        assert list(net) == before


def test_insert_within_range_places_the_module_as_torchs():
    torch = pytest.importorskip("torch")
    for index in (-3, -1, 0, 2, 3):
        ours, theirs = nn.Sequential(nn.Tanh(), nn.ReLU(), nn.Sigmoid()), \
            torch.nn.Sequential(torch.nn.Tanh(), torch.nn.ReLU(), torch.nn.Sigmoid())
        ours.insert(index, nn.Identity())
        theirs.insert(index, torch.nn.Identity())
        assert repr(ours) == repr(theirs), index
    with pytest.raises(IndexError):
        torch.nn.Sequential(torch.nn.Tanh(), torch.nn.ReLU(), torch.nn.Sigmoid()).insert(4, torch.nn.Identity())


# ===================================================================== ModuleList, ModuleDict
def stack(library):
    """Layers kept in a ModuleList and heads in a ModuleDict, as a PyTorch model keeps them (nn or torch.nn)."""

    class Stack(library.Module):
        def __init__(self):
            super().__init__()
            self.layers = library.ModuleList([library.Linear(2, 2) for _ in range(2)])
            self.layers.append(library.Linear(2, 3))
            self.heads = library.ModuleDict({"a": library.Linear(3, 1), "b": library.Linear(3, 2)})

    return Stack()


def test_module_list_and_dict_register_their_parameters_under_their_keys():
    net = stack(nn)
    assert list(net.state_dict()) == [f"layers.{i}.{w}" for i in range(3) for w in ("weight", "bias")] + \
        [f"heads.{k}.{w}" for k in "ab" for w in ("weight", "bias")]
    assert len(net.parameters()) == 10
    layers = net.layers
    first = layers[0]
    layers.insert(0, nn.Tanh())
    layers.extend([nn.ReLU()])
    assert len(layers) == 5 and layers[1] is first and isinstance(layers[-1], nn.ReLU)
    assert isinstance(layers[1:3], nn.ModuleList) and list(layers[1:3])[0] is first
    heads = net.heads
    assert "a" in heads and "c" not in heads and len(heads) == 2 and list(heads) == ["a", "b"]
    assert list(heads.keys()) == ["a", "b"] and [m for _, m in heads.items()] == list(heads.values())
    heads["c"] = nn.Identity()
    assert heads.pop("a").out_features == 1 and list(heads) == ["b", "c"]
    with pytest.raises(KeyError, match=r"no module 'a'; its keys are \['b', 'c'\]"):
        heads["a"]
    with pytest.raises(KeyError, match="already has an attribute 'train'"):
        heads["train"] = nn.Tanh()  # would shadow Module.train, as PyTorch refuses


def test_module_dict_takes_another_module_dict_as_torchs():
    tanh, relu = nn.Tanh(), nn.ReLU()
    first = nn.ModuleDict({"ab": tanh, "c": relu})
    copy = nn.ModuleDict(first)
    assert list(copy.items()) == [("ab", tanh), ("c", relu)]
    copy.update(nn.ModuleDict({"d": nn.Identity()}))
    assert list(copy) == ["ab", "c", "d"]


def test_module_list_and_dict_names_equal_torchs():
    torch = pytest.importorskip("torch")
    ours, theirs = stack(nn), stack(torch.nn)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [name for name, _ in ours.named_modules()] == [name for name, _ in theirs.named_modules()]
    assert [name for name, _ in ours.named_children()] == [name for name, _ in theirs.named_children()]
    assert [type(m).__name__ for m in ours.children()] == [type(m).__name__ for m in theirs.children()]


# ===================================================================== dtype
def test_double_casts_every_parameter_in_place_and_training_continues_in_float64():
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))  # float32 by default
    params = net.parameters()
    net(tr.Tensor(np.ones((2, 3), np.float32))).sum().backward()
    assert net.double() is net
    assert net.parameters() == params and all(p.dtype == np.float64 and p.grad.dtype == np.float64 for p in params)
    optimizer = tr.optim.SGD(net.parameters(), lr=0.1)  # made after the cast: it sees float64 parameters
    net.zero_grad()
    x = np.random.default_rng(0).standard_normal((5, 3))
    loss = (net(tr.Tensor(x)) ** 2).mean()
    loss.backward()
    # the float64 gradient agrees with central differences (a float32 one could not, to 1e-9)
    numeric, = tr.numerical_grad(lambda weight: (net(tr.Tensor(x)) ** 2).mean(), [params[0]])  # perturbed in place
    np.testing.assert_allclose(params[0].grad, numeric, rtol=1e-6, atol=1e-9)
    before = [p.data.copy() for p in params]
    optimizer.step()
    for p, old in zip(params, before):
        np.testing.assert_allclose(p.data, old - 0.1 * p.grad, rtol=1e-15)
    assert net.float() is net and all(p.dtype == np.float32 for p in params)


def test_a_cast_parameter_takes_hooks_and_gradients_of_its_new_dtype():
    """The leaf's graph record is remade in the new dtype: a hook's float64 gradient fits it."""
    layer = nn.Linear(2, 1).double()
    layer.weight.register_hook(lambda g: 2 * g)
    x = np.array([[1.0, -3.0]])
    layer(tr.Tensor(x)).sum().backward()
    np.testing.assert_array_equal(layer.weight.grad, 2 * x)


def test_to_takes_a_dtype_a_tensor_or_the_cpu_and_refuses_other_devices():
    net = nn.Linear(2, 2)
    assert net.to("float64").weight.dtype == np.float64
    assert net.to(tr.Tensor(np.zeros(1, np.float32))).weight.dtype == np.float32
    assert net.to("cpu", np.float64).weight.dtype == np.float64
    assert net.to(device="cpu", dtype=np.float32).weight.dtype == np.float32
    with pytest.raises(ValueError, match="runs on the CPU only, got device 'cuda:0'"):
        net.to("cuda:0")
    with pytest.raises(TypeError, match="dtype must be a floating-point dtype"):
        net.to(np.int64)
    assert net.weight.dtype == np.float32  # nothing changed


@pytest.mark.parametrize("fast", [True, False])
def test_a_cast_lstm_equals_torchs_float64_lstm(fast):
    """The cells share the layer's parameters: after ``double()`` they run in float64, accelerated or not.
    Weights loaded after the cast keep all their float64 digits, so the outputs equal torch's to 1e-12."""
    torch = pytest.importorskip("torch")
    manual_seed(1)
    ours = nn.LSTM(3, 4, num_layers=2).double()
    theirs = torch.nn.LSTM(3, 4, num_layers=2).double()
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    x = np.random.default_rng(1).standard_normal((5, 2, 3))
    with tr.fast(fast):
        out, (h, c) = ours(tr.Tensor(x))
        (out.sum() + (h * c).sum()).backward()
    their_out, (their_h, their_c) = theirs(torch.from_numpy(x))
    (their_out.sum() + (their_h * their_c).sum()).backward()
    np.testing.assert_allclose(out.data, their_out.detach().numpy(), rtol=1e-12, atol=1e-14)
    for name, q in theirs.named_parameters():
        np.testing.assert_allclose(getattr(ours, name).grad, q.grad.numpy(), rtol=1e-10, atol=1e-13, err_msg=name)


# ===================================================================== apply, requires_grad_, zero_grad
def visit_order(net):
    seen = []
    assert net.apply(lambda m: seen.append(type(m).__name__)) is net
    return seen


def test_apply_visits_children_before_their_parent():
    net = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.Tanh(), nn.ReLU()), nn.ModuleDict({"s": nn.Sigmoid()}))
    assert visit_order(net) == ["Linear", "Tanh", "ReLU", "Sequential", "Sigmoid", "ModuleDict", "Sequential"]
    with pytest.raises(TypeError, match="fn must be callable"):
        net.apply(3)


def test_apply_order_equals_torchs():
    torch = pytest.importorskip("torch")
    build = lambda lib: lib.Sequential(lib.Linear(2, 2), lib.Sequential(lib.Tanh(), lib.ReLU()),  # noqa: E731
                                       lib.ModuleDict({"s": lib.Sigmoid()}))
    assert visit_order(build(nn)) == visit_order(build(torch.nn))


def test_requires_grad_switches_every_parameter():
    net = mlp()
    assert net.requires_grad_(False) is net and not any(p.requires_grad for p in net.parameters())
    assert not net(tr.Tensor(np.ones((1, 3)))).requires_grad
    net.requires_grad_()
    assert all(p.requires_grad for p in net.parameters())
    net(tr.Tensor(np.ones((1, 3)))).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    with pytest.raises(TypeError, match="requires_grad must be True or False"):
        net.requires_grad_(1)


def test_a_frozen_submodule_gets_no_gradient_and_the_rest_the_closed_form():
    """First Linear frozen: backward leaves its .grad None; the last Linear's gradient of sum(y) is
    (sum over rows of tanh(h)) for the weight and the row count for the bias, as with nothing frozen."""
    net = mlp()
    net[0].requires_grad_(False)
    x = np.random.default_rng(6).standard_normal((5, 3))
    net(tr.Tensor(x)).sum().backward()
    assert net[0].weight.grad is None and net[0].bias.grad is None
    hidden = np.tanh(x @ net[0].weight.data.T + net[0].bias.data)
    np.testing.assert_allclose(net[2].weight.grad, np.tile(hidden.sum(axis=0), (2, 1)), rtol=1e-12)
    np.testing.assert_allclose(net[2].bias.grad, [5.0, 5.0], rtol=1e-15)


def test_zero_grad_sets_to_none_by_default_or_zeroes_in_place():
    net = mlp()
    net(tr.Tensor(np.ones((2, 3)))).sum().backward()
    grads = [p.grad for p in net.parameters()]
    net.zero_grad(set_to_none=False)
    assert all(p.grad is g and not g.any() for p, g in zip(net.parameters(), grads))
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    net.zero_grad(set_to_none=False)  # no gradient to zero: stays None, as torch's
    assert all(p.grad is None for p in net.parameters())


# ===================================================================== repr
REPRS = [  # (ours, torch's (built by the same lambda on torch.nn), expected text)
    (lambda lib: lib.Sequential(lib.Linear(2, 3), lib.ReLU(), lib.Sequential(lib.Tanh())),
     "Sequential(\n  (0): Linear(in_features=2, out_features=3, bias=True)\n  (1): ReLU()\n"
     "  (2): Sequential(\n    (0): Tanh()\n  )\n)"),
    (lambda lib: lib.LSTM(10, 20, num_layers=2), "LSTM(10, 20, num_layers=2)"),
    (lambda lib: lib.LSTM(10, 20, num_layers=2, dropout=0.5), "LSTM(10, 20, num_layers=2, dropout=0.5)"),
    (lambda lib: lib.GRU(3, 4, bias=False, batch_first=True, bidirectional=True),
     "GRU(3, 4, bias=False, batch_first=True, bidirectional=True)"),
    (lambda lib: lib.RNNCell(3, 4, nonlinearity="relu"), "RNNCell(3, 4, nonlinearity=relu)"),
    (lambda lib: lib.LSTMCell(3, 4, bias=False), "LSTMCell(3, 4, bias=False)"),
    (lambda lib: lib.ModuleDict({"a": lib.Tanh()}), "ModuleDict(\n  (a): Tanh()\n)"),
    (lambda lib: lib.ModuleList([lib.Identity(), lib.Sigmoid()]),
     "ModuleList(\n  (0): Identity()\n  (1): Sigmoid()\n)"),
    (lambda lib: lib.ModuleList([lib.Linear(2, 2), lib.Linear(2, 2), lib.Linear(2, 2), lib.Tanh(), lib.Tanh()]),
     "ModuleList(\n  (0-2): 3 x Linear(in_features=2, out_features=2, bias=True)\n  (3-4): 2 x Tanh()\n)"),
    (lambda lib: lib.Sequential(lib.ModuleList([lib.Sequential(lib.Tanh()), lib.Sequential(lib.Tanh())])),
     "Sequential(\n  (0): ModuleList(\n    (0-1): 2 x Sequential(\n      (0): Tanh()\n    )\n  )\n)"),
    (lambda lib: lib.ModuleList(), "ModuleList()"),
    (lambda lib: lib.CrossEntropyLoss(), "CrossEntropyLoss()"),
    (lambda lib: lib.MSELoss(), "MSELoss()"),
    (lambda lib: lib.ReLU(inplace=True), "ReLU(inplace=True)"),
]


@pytest.mark.parametrize("build, expected", REPRS)
def test_repr_has_pytorchs_layout(build, expected):
    assert repr(build(nn)) == expected


@pytest.mark.parametrize("build, expected", REPRS)
def test_repr_equals_torchs(build, expected):
    torch = pytest.importorskip("torch")
    assert repr(build(nn)) == repr(build(torch.nn))


def test_recurrent_and_stacked_recurrent_show_their_cell():
    assert repr(nn.Recurrent(nn.GRUCell(3, 4), batch_first=True)) == \
        "Recurrent(\n  batch_first=True\n  (cell): GRUCell(3, 4)\n)"
    stacked = nn.StackedRecurrent(lambda d, layer, direction: nn.RNNCell(d, 5, nonlinearity="relu"), 3, 5,
                                  num_layers=2)
    assert repr(stacked) == "StackedRecurrent(3, 5, num_layers=2, cell=RNNCell(3, 5, nonlinearity=relu))"


# ===================================================================== activations and losses
ACTIVATIONS = {"Tanh": np.tanh, "ReLU": lambda x: np.maximum(x, 0), "Sigmoid": lambda x: 1 / (1 + np.exp(-x)),
               "Identity": lambda x: x}
DERIVATIVES = {"Tanh": lambda x: 1 - np.tanh(x) ** 2, "ReLU": lambda x: (x > 0).astype(x.dtype),
               "Sigmoid": lambda x: np.exp(-x) / (1 + np.exp(-x)) ** 2, "Identity": np.ones_like}


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
@FEW
@given(shape=st.lists(st.integers(1, 3), max_size=3), seed=st.integers(0, 2**31))
def test_activation_modules_equal_their_closed_forms(name, shape, seed):
    x = np.random.default_rng(seed).uniform(-2, 2, shape) + 0.01  # no input at relu's kink
    t = tr.Tensor(x, requires_grad=True)
    y = getattr(nn, name)()(t)
    np.testing.assert_allclose(y.data, ACTIVATIONS[name](x), rtol=1e-12)
    (y * 2.0).sum().backward()
    np.testing.assert_allclose(t.grad, 2.0 * DERIVATIVES[name](x), rtol=1e-12)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_modules_equal_torchs(name):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).uniform(-2, 2, (3, 4)) + 0.01
    t, u = tr.Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y, v = getattr(nn, name)()(t), getattr(torch.nn, name)()(u)
    np.testing.assert_allclose(y.data, v.detach().numpy(), rtol=1e-14)
    (y * y).sum().backward()
    (v * v).sum().backward()
    np.testing.assert_allclose(t.grad, u.grad.numpy(), rtol=1e-14)


def loss_problem(rng):
    """Logits (4, 3), class targets (one ignored with -100), probabilities and binary targets (4, 3)."""
    logits = rng.standard_normal((4, 3))
    classes = np.array([0, 2, -100, 1])
    probabilities = rng.uniform(0.05, 0.95, (4, 3))
    binary = rng.integers(0, 2, (4, 3)).astype(np.float64)
    return logits, classes, probabilities, binary


def log_softmax(z):
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_cross_entropy_and_nll_loss_modules_equal_the_closed_form(smoothing):
    logits, classes, _, _ = loss_problem(np.random.default_rng(2))
    kept = classes != -100
    logp = log_softmax(logits)[kept]
    picked = logp[np.arange(kept.sum()), classes[kept]]
    expected = -((1 - smoothing) * picked + smoothing * logp.mean(axis=-1)).mean()
    got = nn.CrossEntropyLoss(label_smoothing=smoothing)(tr.Tensor(logits), classes)
    np.testing.assert_allclose(got.data, expected, rtol=1e-12)
    summed = nn.NLLLoss(reduction="sum")(tr.Tensor(log_softmax(logits)), classes)
    np.testing.assert_allclose(summed.data, -picked.sum(), rtol=1e-12)


def test_regression_and_binary_loss_modules_equal_the_closed_forms():
    _, _, p, y = loss_problem(np.random.default_rng(3))
    x = np.log(p / (1 - p))  # logits whose sigmoid is p
    bce = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    np.testing.assert_allclose(nn.MSELoss(reduction="sum")(tr.Tensor(p), tr.Tensor(y)).data, ((p - y) ** 2).sum(),
                               rtol=1e-12)
    np.testing.assert_allclose(nn.BCELoss()(tr.Tensor(p), tr.Tensor(y)).data, bce.mean(), rtol=1e-12)
    pos_weight = np.array([1.0, 2.0, 0.5])
    weighted = -(pos_weight * y * np.log(p) + (1 - y) * np.log(1 - p))
    np.testing.assert_allclose(nn.BCEWithLogitsLoss(pos_weight=pos_weight, reduction="none")(tr.Tensor(x),
                                                                                               tr.Tensor(y)).data,
                               weighted, rtol=1e-10)
    with pytest.raises(ValueError, match="per-class weights are not supported"):
        nn.CrossEntropyLoss(np.ones(3))


LOSSES = [  # name, keyword arguments, which inputs (scores/probabilities/logits), which target
    ("CrossEntropyLoss", {}, "logits", "classes"),
    ("CrossEntropyLoss", {"reduction": "sum", "label_smoothing": 0.1}, "logits", "classes"),
    ("CrossEntropyLoss", {"reduction": "none", "ignore_index": 2}, "logits", "classes_padded_with_2"),
    ("NLLLoss", {}, "log_probabilities", "classes"),
    ("MSELoss", {"reduction": "sum"}, "logits", "binary"),
    ("BCELoss", {}, "probabilities", "binary"),
    ("BCEWithLogitsLoss", {"reduction": "sum"}, "logits", "binary"),
]


@pytest.mark.parametrize("name, kwargs, inputs, targets", LOSSES)
def test_loss_modules_equal_torchs_in_values_and_gradients(name, kwargs, inputs, targets):
    torch = pytest.importorskip("torch")
    logits, classes, probabilities, binary = loss_problem(np.random.default_rng(4))
    x = {"logits": logits, "probabilities": probabilities, "log_probabilities": log_softmax(logits)}[inputs]
    target = {"classes": classes, "classes_padded_with_2": np.where(classes < 0, 2, classes), "binary": binary}[targets]
    t, u = tr.Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ours = getattr(nn, name)(**kwargs)(t, target if target.dtype.kind == "i" else tr.Tensor(target))
    theirs = getattr(torch.nn, name)(**kwargs)(u, torch.from_numpy(target))
    np.testing.assert_allclose(ours.data, theirs.detach().numpy(), rtol=1e-12, atol=1e-15)
    (ours * ours).sum().backward()
    (theirs * theirs).sum().backward()
    np.testing.assert_allclose(t.grad, u.grad.numpy(), rtol=1e-12, atol=1e-15)


# ===================================================================== nn.utils
def test_nn_utils_clipping_is_the_optim_functions_themselves():
    from tinygrad_rnn.nn.utils import clip_grad_norm_, clip_grad_value_
    assert clip_grad_norm_ is tr.optim.clip_grad_norm_ and clip_grad_value_ is tr.optim.clip_grad_value_
    assert tr.nn.utils.clip_grad_norm_ is clip_grad_norm_
    p = nn.Parameter(np.zeros(2))
    p.grad = np.array([3.0, 4.0])
    assert clip_grad_norm_([p], 1.0) == 5.0
    np.testing.assert_allclose(p.grad, np.array([3.0, 4.0]) / (5.0 + 1e-6), rtol=1e-15)
    p.grad = np.array([np.inf, 1.0])
    with pytest.raises(RuntimeError, match="total norm of order 2.0 of the gradients is inf"):
        clip_grad_norm_(p, 1.0, error_if_nonfinite=True)


def test_nn_utils_clipping_equals_torchs():
    torch = pytest.importorskip("torch")
    grads = np.random.default_rng(5).standard_normal((2, 3)) * 4
    ours, theirs = nn.Parameter(np.zeros((2, 3))), torch.zeros((2, 3), dtype=torch.float64, requires_grad=True)
    ours.grad, theirs.grad = grads.copy(), torch.from_numpy(grads.copy())
    np.testing.assert_allclose(tr.nn.utils.clip_grad_norm_([ours], 2.0),
                               torch.nn.utils.clip_grad_norm_([theirs], 2.0).item(), rtol=1e-14)
    np.testing.assert_allclose(ours.grad, theirs.grad.numpy(), rtol=1e-14)
    tr.nn.utils.clip_grad_value_([ours], 0.3)
    torch.nn.utils.clip_grad_value_([theirs], 0.3)
    np.testing.assert_array_equal(ours.grad, theirs.grad.numpy())
