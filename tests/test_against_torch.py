"""RNN, LSTM, GRU and their cells against PyTorch (an optional check: torch is never a dependency).

Weights move between the two by state_dict with no renaming, in both directions. In float64
the outputs, h_n (and c_n) and the gradients of the input, of hx and of every parameter for

    L = sum(output * G) + sum(h_n * G_h) (+ sum(c_n * G_c))

must agree to 1e-10 (relative), over layers, directions, batch_first, bias, given or default hx
and variable lengths (torch's packed sequences), for the cells, and for unbatched input. Each
tensor's error is tr.rel_error_norm, ||ours - torch's|| / (||ours|| + ||torch's||) in the 2-norm:
entry by entry, a gradient entry that is small because its terms cancel carries the rounding
error of the terms (the two libraries sum in different orders), and failed 1e-10 by chance
(2.7e-10 seen once in thousands of draws); over the whole tensor any real defect still shows far
above 1e-10.
"""
import itertools

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

torch = pytest.importorskip("torch")
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence  # noqa: E402

import tinygrad_rnn as tr  # noqa: E402
import tinygrad_rnn.nn as nn  # noqa: E402
from tinygrad_rnn.bptt.sequence import state_of, state_parts  # noqa: E402

TOLERANCE = 1e-10

# name -> (our layer, torch's layer, our cell, torch's cell, keywords for all four, state parts)
KINDS = {
    "rnn_tanh": (nn.RNN, torch.nn.RNN, nn.RNNCell, torch.nn.RNNCell, {"nonlinearity": "tanh"}, 1),
    "rnn_relu": (nn.RNN, torch.nn.RNN, nn.RNNCell, torch.nn.RNNCell, {"nonlinearity": "relu"}, 1),
    "lstm": (nn.LSTM, torch.nn.LSTM, nn.LSTMCell, torch.nn.LSTMCell, {}, 2),
    "gru": (nn.GRU, torch.nn.GRU, nn.GRUCell, torch.nn.GRUCell, {}, 1),
}


def assert_close(ours, theirs, what):
    theirs = theirs.detach().numpy() if isinstance(theirs, torch.Tensor) else theirs
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape}, torch {theirs.shape}"
    error = tr.rel_error_norm(ours, theirs)
    assert error < TOLERANCE, f"{what}: relative error {error:.2e} (2-norm)"


def copy_into_torch(ours, theirs):
    """Our state_dict into the torch module, key for key (a strict load: the names must match)."""
    theirs.load_state_dict({name: torch.from_numpy(value) for name, value in ours.state_dict().items()})


def leaves(inputs, states, lib):
    """The input and the given states as fresh leaves that require grad, of ``lib`` (tr or torch)."""
    make = (lambda a: tr.Tensor(a.copy(), requires_grad=True)) if lib is tr else \
        (lambda a: torch.tensor(a, requires_grad=True))
    return make(inputs), tuple(make(s) for s in states)


def compare(ours, theirs, run_ours, run_theirs, inputs, states, upstream):
    """Run both on the same arrays, backpropagate the same upstream gradients, compare everything.

    ``run_*(x, states) -> (output, final state)``; ``states`` a tuple of ndarrays (may be empty);
    ``upstream`` one array for the output and one per final state part.
    """
    x_ours, states_ours = leaves(inputs, states, tr)
    x_theirs, states_theirs = leaves(inputs, states, torch)
    output, final = run_ours(x_ours, states_ours)
    produced_ours = (output, *state_parts(final))
    sum((p * g).sum() for p, g in zip(produced_ours, upstream)).backward()
    output, final = run_theirs(x_theirs, states_theirs)
    produced_theirs = (output, *state_parts(final))
    sum((p * torch.from_numpy(g)).sum() for p, g in zip(produced_theirs, upstream)).backward()

    assert len(produced_ours) == len(produced_theirs) == len(upstream)
    for name, a, b in zip(("output", "h_n", "c_n"), produced_ours, produced_theirs):
        assert_close(a.data, b, name)
    assert_close(x_ours.grad, x_theirs.grad, "d input")
    for name, a, b in zip(("h_0", "c_0"), states_ours, states_theirs):
        assert_close(a.grad, b.grad, f"d {name}")
    grads_theirs = {name: p.grad for name, p in theirs.named_parameters()}
    assert set(grads_theirs) == {name for name, _ in ours.named_parameters()}
    for name, p in ours.named_parameters():
        assert_close(p.grad, grads_theirs[name], f"d {name}")


def run_torch_layer(layer, lengths, steps):
    """torch's layer as run(x, states); with lengths through pack_padded_sequence / pad_packed_sequence."""
    batch_first = layer.batch_first

    def run(x, states):
        hx = state_of(states) if states else None
        if lengths is None:
            return layer(x, hx)
        packed = pack_padded_sequence(x, torch.from_numpy(lengths), batch_first=batch_first, enforce_sorted=False)
        output, final = layer(packed, hx)
        return pad_packed_sequence(output, batch_first=batch_first, total_length=steps)[0], final

    return run


def run_our_layer(layer, lengths=None):
    return lambda x, states: layer(x, state_of(states) if states else None, lengths=lengths)


# ============================================================================ layers
# every combination of num_layers, bidirectional, batch_first, bias, given hx and lengths
FLAGS = ("bidirectional", "batch_first", "bias", "given_hx", "lengths")
COMBINATIONS = list(itertools.product((1, 2, 3), *[(False, True)] * len(FLAGS)))


def combination_id(combination):
    return "-".join([f"L{combination[0]}"] + [flag if on else f"no_{flag}" for flag, on in zip(FLAGS, combination[1:])])


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("combination", COMBINATIONS, ids=[combination_id(c) for c in COMBINATIONS])
@settings(max_examples=2, deadline=None)
@given(steps=st.integers(1, 4), batch=st.integers(1, 3), input_size=st.integers(1, 3),
       hidden_size=st.integers(1, 3), seed=st.integers(0, 2**31 - 1), data=st.data())
def test_layers_match_torch(kind, combination, steps, batch, input_size, hidden_size, seed, data):
    num_layers, bidirectional, batch_first, bias, given_hx, with_lengths = combination
    ours_class, torch_class, _, _, options, n_parts = KINDS[kind]
    lengths = np.array(data.draw(st.lists(st.integers(1, steps), min_size=batch, max_size=batch))) \
        if with_lengths else None
    config = dict(num_layers=num_layers, bias=bias, batch_first=batch_first, bidirectional=bidirectional, **options)
    ours = ours_class(input_size, hidden_size, dtype=np.float64, **config)
    theirs = torch_class(input_size, hidden_size, **config).double()
    copy_into_torch(ours, theirs)
    directions = 2 if bidirectional else 1
    rng = np.random.default_rng(seed)
    x_shape = (batch, steps, input_size) if batch_first else (steps, batch, input_size)
    state_shape = (num_layers * directions, batch, hidden_size)
    states = tuple(rng.standard_normal(state_shape) for _ in range(n_parts)) if given_hx else ()
    upstream = (rng.standard_normal(x_shape[:2] + (directions * hidden_size,)),) + tuple(
        rng.standard_normal(state_shape) for _ in range(n_parts))
    compare(ours, theirs, run_our_layer(ours, lengths), run_torch_layer(theirs, lengths, steps),
            rng.standard_normal(x_shape), states, upstream)


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("given_hx", [False, True], ids=["zero_hx", "given_hx"])
def test_unbatched_layers_match_torch(kind, given_hx):
    ours_class, torch_class, _, _, options, n_parts = KINDS[kind]
    ours = ours_class(3, 2, num_layers=2, bidirectional=True, dtype=np.float64, **options)
    theirs = torch_class(3, 2, num_layers=2, bidirectional=True, **options).double()
    copy_into_torch(ours, theirs)
    rng = np.random.default_rng(0)
    states = tuple(rng.standard_normal((4, 2)) for _ in range(n_parts)) if given_hx else ()
    upstream = (rng.standard_normal((5, 4)),) + tuple(rng.standard_normal((4, 2)) for _ in range(n_parts))
    compare(ours, theirs, run_our_layer(ours), run_torch_layer(theirs, None, 5), rng.standard_normal((5, 3)),
            states, upstream)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_torch_weights_load_into_ours_unchanged(kind):
    ours_class, torch_class, _, _, options, _ = KINDS[kind]
    theirs = torch_class(3, 4, num_layers=2, bidirectional=True, batch_first=True, **options).double()
    ours = ours_class(3, 4, num_layers=2, bidirectional=True, batch_first=True, dtype=np.float64, **options)
    assert ours.load_state_dict({name: v.detach().numpy() for name, v in theirs.state_dict().items()}) == ([], [])
    for name, value in theirs.state_dict().items():
        np.testing.assert_array_equal(ours.state_dict()[name], value.numpy())
    x = np.random.default_rng(1).standard_normal((2, 6, 3))
    lengths = np.array([6, 2])
    assert_close(run_our_layer(ours, lengths)(x, ())[0].data,
                 run_torch_layer(theirs, lengths, 6)(torch.from_numpy(x), ())[0], "output")


# ============================================================================ cells
@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("batch", [None, 1, 3], ids=["unbatched", "batch1", "batch3"])
@pytest.mark.parametrize("given_state", [False, True], ids=["zero_state", "given_state"])
def test_cells_match_torch(kind, bias, batch, given_state):
    _, _, ours_class, torch_class, options, n_parts = KINDS[kind]
    ours = ours_class(4, 3, bias=bias, dtype=np.float64, **options)
    theirs = torch_class(4, 3, bias=bias, **options).double()
    copy_into_torch(ours, theirs)
    rng = np.random.default_rng(2)
    lead = () if batch is None else (batch,)
    states = tuple(rng.standard_normal(lead + (3,)) for _ in range(n_parts)) if given_state else ()
    upstream = tuple(rng.standard_normal(lead + (3,)) for _ in range(n_parts))

    def step(cell):
        def run(x, states):  # a cell has no separate output: the new state is the result
            new = state_parts(cell(x, state_of(states) if states else None))
            return new[0], new[1:]
        return run

    compare(ours, theirs, step(ours), step(theirs), rng.standard_normal(lead + (4,)), states, upstream)
