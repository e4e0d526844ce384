"""Module and Parameter, Linear, Embedding, Dropout and the initialisers of tinygrad_rnn.nn.

Values are checked against NumPy written here (x W^T + b, a table lookup, closed-form bounds and
W^T W = I), gradients against finite differences (tr.gradcheck) or a hand-summed lookup.
"""
import os

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinygrad_rnn as tr
import tinygrad_rnn.nn as nn
from tinygrad_rnn.random import manual_seed

FAST = settings(max_examples=15, deadline=None)


class Inner(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(np.arange(6.0).reshape(2, 3))


class Net(nn.Module):
    """encoder (Linear 3->4), a bare Parameter, a nested Inner, decoder (Linear 4->2, no bias)."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Linear(3, 4, dtype=np.float64)
        self.scale = nn.Parameter(np.ones(4))
        self.block = Inner()
        self.decoder = nn.Linear(4, 2, bias=False, dtype=np.float64)
        self.not_a_parameter = np.zeros(3)  # plain arrays are not registered

    def forward(self, x):
        return self.decoder(self.encoder(x) * self.scale)


# a module's own parameters first, then each submodule's, as PyTorch orders them
NET_SHAPES = {"scale": (4,), "encoder.weight": (4, 3), "encoder.bias": (4,), "block.w": (2, 3),
              "decoder.weight": (2, 4)}


# ============================================================================ Module and Parameter
def test_parameter_is_a_leaf_that_requires_grad():
    p = nn.Parameter(np.zeros((2, 3)))
    assert isinstance(p, tr.Tensor) and p.requires_grad and p.is_leaf and p.shape == (2, 3)
    assert not nn.Parameter(np.zeros(2), requires_grad=False).requires_grad


def test_named_parameters_use_dotted_names_in_registration_order():
    net = Net()
    named = list(net.named_parameters())
    assert [name for name, _ in named] == list(NET_SHAPES)
    assert {name: p.shape for name, p in named} == NET_SHAPES
    assert named[1][1] is net.encoder.weight and named[3][1] is net.block.w
    assert [id(p) for p in net.parameters()] == [id(p) for _, p in named]
    assert [name for name, _ in net.named_parameters(recurse=False)] == ["scale"]
    assert [name for name, _ in net.named_modules()] == ["", "encoder", "block", "decoder"]


def test_reassigning_an_attribute_replaces_or_unregisters_it():
    net = Net()
    net.scale = None  # no longer a parameter
    net.block = nn.Parameter(np.zeros(1))  # a module replaced by a parameter
    assert [name for name, _ in net.named_parameters()] == [
        "block", "encoder.weight", "encoder.bias", "decoder.weight"]
    net.register_parameter("extra", None)
    assert net.extra is None and "extra" not in dict(net.named_parameters())


def test_a_shared_parameter_is_listed_once():
    net = Net()
    net.tied = net.encoder.weight
    assert sum(p is net.encoder.weight for p in net.parameters()) == 1


def test_module_must_call_super_init_before_assigning():
    class Forgetful(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(np.zeros(2))

    with pytest.raises(AttributeError, match="super"):
        Forgetful()


def test_state_dict_holds_copies():
    net = Net()
    state = net.state_dict()
    assert list(state) == list(NET_SHAPES)
    before = net.encoder.weight.data.copy()
    state["encoder.weight"][...] = 123.0
    np.testing.assert_array_equal(net.encoder.weight.data, before)
    net.encoder.weight.data[...] = -1.0
    assert np.all(state["encoder.weight"] == 123.0)


def test_load_state_dict_copies_values_and_casts_to_the_parameter_dtype():
    net = Net()
    rng = np.random.default_rng(0)
    source = {name: rng.standard_normal(shape).astype(np.float32) for name, shape in NET_SHAPES.items()}
    assert net.load_state_dict(source) == ([], [])
    for name, param in net.named_parameters():
        assert param.dtype == np.float64
        np.testing.assert_array_equal(param.data, source[name].astype(np.float64))
    source["scale"][...] = 7.0
    assert not np.any(net.scale.data == 7.0)


def test_load_state_dict_strict_names_every_missing_unexpected_and_misshaped_key():
    net = Net()
    before = net.state_dict()
    state = dict(before)
    del state["encoder.bias"]
    state["encoder.weight"] = np.zeros((3, 4))
    state["decoder.bias"] = np.zeros(2)
    with pytest.raises(KeyError) as info:
        net.load_state_dict(state)
    message = str(info.value)
    assert "missing key: encoder.bias" in message
    assert "unexpected key: decoder.bias" in message
    assert "encoder.weight" in message and "(4, 3)" in message and "(3, 4)" in message
    for name, value in net.state_dict().items():  # nothing was half loaded
        np.testing.assert_array_equal(value, before[name])


def test_load_state_dict_non_strict_loads_what_matches_and_reports_the_rest():
    net = Net()
    state = {"encoder.bias": np.full(4, 2.0), "decoder.bias": np.zeros(2)}
    missing, unexpected = net.load_state_dict(state, strict=False)
    assert missing == ["scale", "encoder.weight", "block.w", "decoder.weight"]
    assert unexpected == ["decoder.bias"]
    np.testing.assert_array_equal(net.encoder.bias.data, np.full(4, 2.0))
    with pytest.raises(KeyError, match=r"scale: expected shape \(4,\), got \(5,\)"):
        net.load_state_dict({"scale": np.zeros(5)}, strict=False)


def test_zero_grad_clears_every_gradient():
    net = Net()
    (net(tr.Tensor(np.ones((2, 3)))).sum() + net.block.w.sum()).backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_train_and_eval_reach_every_submodule():
    net = Net()
    net.drop = nn.Dropout(0.5)
    assert all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())


# ============================================================================ save and load
def _perturbed(net, seed):
    rng = np.random.default_rng(seed)
    net.load_state_dict({name: rng.standard_normal(v.shape) for name, v in net.state_dict().items()})
    return net


def test_save_then_load_round_trips(tmp_path):
    saved = _perturbed(Net(), 1)
    path = tmp_path / "sub" / "net.npz"  # the folder is created
    saved.save(path)
    loaded = _perturbed(Net(), 2).load(str(path))
    assert loaded == ([], [])
    restored = Net()
    restored.load(path)
    for name, value in restored.state_dict().items():
        np.testing.assert_array_equal(value, saved.state_dict()[name])


def test_load_into_a_different_model_names_the_keys_and_the_file(tmp_path):
    path = tmp_path / "linear.npz"
    nn.Linear(3, 4).save(path)
    with pytest.raises(KeyError) as info:
        Net().load(path)
    assert "missing key: encoder.weight" in str(info.value) and "unexpected key: weight" in str(info.value)
    assert str(path) in str(info.value)


def test_load_of_a_missing_file_names_the_path(tmp_path):
    path = tmp_path / "nowhere.npz"
    with pytest.raises(FileNotFoundError, match="nowhere.npz"):
        Net().load(path)


@pytest.mark.parametrize("content", [b"this is not an npz archive", b"PK\x03\x04 truncated zip"])
def test_load_of_a_corrupt_file_names_the_path(tmp_path, content):
    path = tmp_path / "corrupt.npz"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="corrupt.npz"):
        Net().load(path)


def test_load_of_a_truncated_save_names_the_path(tmp_path):
    path = tmp_path / "cut.npz"
    Net().save(path)
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(ValueError, match="cut.npz"):
        Net().load(path)


def test_an_interrupted_save_keeps_the_previous_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "net.npz"
    first = _perturbed(Net(), 3)
    first.save(path)
    real_savez = np.savez

    def crash_midway(file, **arrays):
        real_savez(file, **arrays)  # the bytes are written ...
        raise OSError("simulated crash while saving")  # ... but the save never completes

    monkeypatch.setattr(np, "savez", crash_midway)
    with pytest.raises(OSError, match="simulated crash"):
        _perturbed(Net(), 4).save(path)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["net.npz"]
    reloaded = Net()
    reloaded.load(path)
    for name, value in reloaded.state_dict().items():
        np.testing.assert_array_equal(value, first.state_dict()[name])


# ============================================================================ Linear
@FAST
@given(lead=st.lists(st.integers(1, 3), max_size=2), d_in=st.integers(1, 4), d_out=st.integers(1, 4),
       bias=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_linear_is_x_w_transpose_plus_b(lead, d_in, d_out, bias, seed):
    layer = nn.Linear(d_in, d_out, bias=bias, dtype=np.float64)
    x = np.random.default_rng(seed).standard_normal(tuple(lead) + (d_in,))
    expected = x @ layer.weight.data.T + (layer.bias.data if bias else 0.0)
    y = layer(tr.Tensor(x))
    assert y.shape == tuple(lead) + (d_out,)
    np.testing.assert_allclose(y.data, expected, rtol=1e-13, atol=1e-13)
    assert [name for name, _ in layer.named_parameters()] == (["weight", "bias"] if bias else ["weight"])


def test_linear_gradcheck():
    layer = nn.Linear(3, 2, dtype=np.float64)
    x = tr.Tensor(np.random.default_rng(0).standard_normal((2, 4, 3)), requires_grad=True)
    assert tr.gradcheck(lambda x, w, b: layer(x), (x, layer.weight, layer.bias))


def test_linear_initialisation_and_bad_input():
    layer = nn.Linear(16, 300, dtype=np.float64)
    bound = 1 / np.sqrt(16)
    for p in layer.parameters():
        assert np.abs(p.data).max() <= bound and np.abs(p.data).max() > 0.9 * bound
    with pytest.raises(ValueError, match=r"last dimension 16, got shape \(2, 15\)"):
        layer(tr.Tensor(np.zeros((2, 15))))


# ============================================================================ Embedding
def test_embedding_looks_up_rows_and_repeated_ids_accumulate():
    table = nn.Embedding(5, 3, dtype=np.float64)
    ids = np.array([[1, 4, 1], [0, 1, 4]])
    out = table(ids)
    np.testing.assert_array_equal(out.data, table.weight.data[ids])
    upstream = np.random.default_rng(0).standard_normal((2, 3, 3))
    out.backward(upstream)
    expected = np.zeros((5, 3))
    for (i, j), row in np.ndenumerate(ids):
        expected[row] += upstream[i, j]
    np.testing.assert_allclose(table.weight.grad, expected, rtol=1e-14)
    assert np.all(table.weight.grad[[2, 3]] == 0)


@pytest.mark.parametrize("bad", [5, -1])
def test_embedding_rejects_out_of_range_ids(bad):
    with pytest.raises(IndexError, match=f"id {bad} is out of range for 5"):
        nn.Embedding(5, 3)(np.array([0, bad]))


def test_embedding_rejects_non_integer_ids():
    with pytest.raises(TypeError, match="integers"):
        nn.Embedding(5, 3)(np.array([0.0, 1.0]))


# ============================================================================ Dropout
def test_dropout_is_the_identity_in_eval_and_scales_the_kept_units_in_training():
    layer = nn.Dropout(0.25)
    x = tr.Tensor(np.ones((200, 50)))
    y = layer(x).data
    assert set(np.unique(y)) <= {0.0, 1 / 0.75}
    assert 0.2 < np.mean(y == 0) < 0.3
    manual_seed(8)
    first = layer(x).data
    manual_seed(8)
    np.testing.assert_array_equal(layer(x).data, first)  # the masks come from the seeded generator
    np.testing.assert_array_equal(layer.eval()(x).data, x.data)
    with pytest.raises(ValueError, match="p must be in"):
        nn.Dropout(1.0)


# ============================================================================ initialisers
@pytest.mark.parametrize("make", [lambda: nn.RNNCell(7, 25), lambda: nn.LSTMCell(7, 25),
                                  lambda: nn.GRUCell(7, 25), lambda: nn.GRU(4, 25, num_layers=2)])
def test_recurrent_parameters_are_uniform_within_one_over_sqrt_hidden(make):
    bound = 1 / np.sqrt(25)
    values = np.concatenate([p.data.ravel() for p in make().parameters()])
    assert np.abs(values).max() <= bound
    assert values.min() < -0.95 * bound and values.max() > 0.95 * bound  # spread over the range
    assert abs(values.mean()) < 0.1 * bound


@pytest.mark.parametrize("shape", [(12, 3), (3, 12), (5, 5), (8, 2, 3)])
def test_orthogonal_gives_orthonormal_rows_or_columns(shape):
    p = nn.init.orthogonal_(nn.Parameter(np.empty(shape)), gain=2.0)
    flat = p.data.reshape(shape[0], -1) / 2.0
    rows, cols = flat.shape
    gram = flat.T @ flat if rows >= cols else flat @ flat.T
    np.testing.assert_allclose(gram, np.eye(min(rows, cols)), atol=1e-12)


def test_xavier_uniform_bound():
    p = nn.init.xavier_uniform_(nn.Parameter(np.empty((40, 60))), gain=1.5)
    bound = 1.5 * np.sqrt(6 / (40 + 60))
    assert np.abs(p.data).max() <= bound and np.abs(p.data).max() > 0.95 * bound


def test_initialisers_need_a_matrix():
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        nn.init.orthogonal_(nn.Parameter(np.empty(3)))
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        nn.init.xavier_uniform_(nn.Parameter(np.empty(3)))


def test_manual_seed_repeats_the_initialisation():
    manual_seed(11)
    first = nn.LSTM(3, 4, num_layers=2).state_dict()
    manual_seed(11)
    second = nn.LSTM(3, 4, num_layers=2).state_dict()
    for name in first:
        np.testing.assert_array_equal(first[name], second[name])


def test_a_saved_file_gets_the_usual_permissions_not_the_temporary_files_private_ones(tmp_path):
    import stat
    path = tmp_path / "m.npz"
    nn.Linear(2, 3).save(path)
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~mask
