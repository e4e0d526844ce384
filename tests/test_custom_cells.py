"""Cells written here as a user would, against the Cell protocol: no backward anywhere.

PeepholeLSTMCell writes only forward(x, state), with a tuple state and its own init_state;
MGUCell (minimal gated unit) splits its step into project_input / step. Each is checked by
finite differences through time (with lengths, with reversal), stacked and bidirectional
against a loop written here one row at a time, and by learning a small memory task.
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinygrad_rnn as tr
import tinygrad_rnn.functional as F
import tinygrad_rnn.nn as nn
import tinygrad_rnn.optim as optim
from tinygrad_rnn.bptt.sequence import state_of, state_parts
from tinygrad_rnn.random import manual_seed


def uniform(*shape, hidden_size):
    """A float64 Parameter drawn U(-1/sqrt(H), 1/sqrt(H))."""
    return nn.init.recurrent_default_(nn.Parameter(np.empty(shape)), hidden_size)


class PeepholeLSTMCell(nn.Cell):
    """An LSTM whose gates also look at the cell state (Gers & Schmidhuber, 2000):

        a_i, a_f, a_g, a_o = split(x W^T + h U^T + b, 4)          each (N, H)
        c' = σ(a_f + p_f * c) * c + σ(a_i + p_i * c) * tanh(a_g)
        h' = σ(a_o + p_o * c') * tanh(c')

    W (4H, D), U (4H, H), b (4H,), peephole rows p_i, p_f, p_o in peephole (3, H); state (h, c).
    """

    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.W = uniform(4 * hidden_size, input_size, hidden_size=hidden_size)
        self.U = uniform(4 * hidden_size, hidden_size, hidden_size=hidden_size)
        self.b = uniform(4 * hidden_size, hidden_size=hidden_size)
        self.peephole = uniform(3, hidden_size, hidden_size=hidden_size)

    def init_state(self, batch_size):
        return tr.Tensor(np.zeros((batch_size, self.hidden_size))), tr.Tensor(np.zeros((batch_size, self.hidden_size)))

    def forward(self, x, state):
        h, c = state
        a_i, a_f, a_g, a_o = (x @ self.W.T + h @ self.U.T + self.b).chunk(4, axis=1)
        c_new = (a_f + self.peephole[1] * c).sigmoid() * c + (a_i + self.peephole[0] * c).sigmoid() * a_g.tanh()
        return (a_o + self.peephole[2] * c_new).sigmoid() * c_new.tanh(), c_new


class MGUCell(nn.Cell):
    """Minimal gated unit (Zhou et al., 2016), one gate f:

        f  = σ(x W_f^T + h U_f^T + b_f)
        h~ = tanh(x W_h^T + (f * h) U_h^T + b_h)
        h' = (1 - f) * h + f * h~

    W = [W_f; W_h] (2H, D) and b = [b_f; b_h] (2H,) act on every step's x at once (project_input);
    U_f, U_h (H, H); state h (N, H).
    """

    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.W = uniform(2 * hidden_size, input_size, hidden_size=hidden_size)
        self.b = uniform(2 * hidden_size, hidden_size=hidden_size)
        self.U_f = uniform(hidden_size, hidden_size, hidden_size=hidden_size)
        self.U_h = uniform(hidden_size, hidden_size, hidden_size=hidden_size)

    def project_input(self, x):
        return x @ self.W.T + self.b

    def step(self, projected, h):
        x_f, x_h = projected.chunk(2, axis=-1)
        f = (x_f + h @ self.U_f.T).sigmoid()
        candidate = (x_h + (f * h) @ self.U_h.T).tanh()
        return h + f * (candidate - h)


CELLS = {"peephole": PeepholeLSTMCell, "mgu": MGUCell}


def test_the_cells_follow_the_protocol():
    peephole, mgu = PeepholeLSTMCell(3, 2), MGUCell(3, 2)
    assert not peephole.projects_input and mgu.projects_input
    x = tr.Tensor(np.ones((4, 3)))
    h, c = peephole(x)
    assert h.shape == c.shape == (4, 2)
    assert mgu(x).shape == (4, 2)
    assert peephole(x[0])[0].shape == (2,)  # unbatched
    np.testing.assert_array_equal(mgu(x).data, mgu.step(mgu.project_input(x), mgu.init_state(4)).data)


# ============================================================================ gradients through time
@pytest.mark.parametrize("name", sorted(CELLS))
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("lengths", [None, np.array([4, 1, 3])], ids=["full", "lengths"])
def test_gradcheck_through_time(name, reverse, lengths):
    manual_seed(0)
    cell = CELLS[name](2, 2)
    run = nn.Recurrent(cell, reverse=reverse)
    rng = np.random.default_rng(1)
    x = tr.Tensor(rng.standard_normal((4, 3, 2)), requires_grad=True)
    state = tuple(tr.Tensor(rng.standard_normal((3, 2)), requires_grad=True) for _ in state_parts(cell.init_state(3)))
    count = len(state)

    def unrolled(x, *rest):
        outputs, final = run(x, state_of(rest[:count]), lengths=lengths)
        return (outputs, *state_parts(final))

    assert tr.gradcheck(unrolled, (x,) + state + tuple(cell.parameters()))


# ============================================================================ stacked, bidirectional
def recording(cell_class, hidden_size):
    """A make_cell for StackedRecurrent, and the list of every cell it makes (in order)."""
    cells = []

    def make_cell(input_size, layer, direction):
        cells.append(cell_class(input_size, hidden_size))
        return cells[-1]

    return make_cell, cells


def hand_stack(cells, xs, lengths, num_layers):
    """The stack computed here, one row at a time over its own length with cell(x, state) per step.

    cells[2 * layer + direction]; xs (T, N, D). Returns (output (T, N, 2H), finals: parts each (2L, N, H)).
    """
    steps, batch = xs.shape[:2]
    output = None
    finals = [[None] * batch for _ in cells]
    layer_input = xs
    for layer in range(num_layers):
        rows = []
        for n in range(batch):
            halves = []
            for direction in (0, 1):
                cell = cells[2 * layer + direction]
                order = range(lengths[n]) if direction == 0 else range(lengths[n] - 1, -1, -1)
                state, outs = None, {}
                for t in order:
                    state = cell(tr.Tensor(layer_input[t, n]), state)
                    outs[t] = cell.output(state).data
                finals[2 * layer + direction][n] = tuple(p.data for p in state_parts(state))
                halves.append(np.stack([outs.get(t, np.zeros(cell.hidden_size)) for t in range(steps)]))
            rows.append(np.concatenate(halves, axis=1))
        output = np.stack(rows, axis=1)
        layer_input = output
    per_part = zip(*[zip(*rows) for rows in finals])  # part -> cell -> row
    return output, tuple(np.stack([np.stack(by_row) for by_row in part]) for part in per_part)


@settings(max_examples=6, deadline=None)
@given(name=st.sampled_from(sorted(CELLS)), steps=st.integers(1, 4), batch=st.integers(1, 3),
       data=st.data(), seed=st.integers(0, 2**31 - 1))
def test_stacked_bidirectional_matches_a_loop_written_by_hand(name, steps, batch, data, seed):
    lengths = np.array(data.draw(st.lists(st.integers(1, steps), min_size=batch, max_size=batch)))
    make_cell, cells = recording(CELLS[name], 3)
    stack = nn.StackedRecurrent(make_cell, 2, 3, num_layers=2, bidirectional=True)
    xs = np.random.default_rng(seed).standard_normal((steps, batch, 2))
    output, final = stack(xs, lengths=lengths)
    expected, expected_final = hand_stack(cells, xs, lengths, 2)
    np.testing.assert_allclose(output.data, expected, rtol=1e-12, atol=1e-14)
    for ours, theirs in zip(state_parts(final), expected_final):
        np.testing.assert_allclose(ours.data, theirs, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", sorted(CELLS))
def test_stacked_parameter_names_and_gradients(name):
    manual_seed(2)
    make_cell, cells = recording(CELLS[name], 2)
    stack = nn.StackedRecurrent(make_cell, 2, 2, num_layers=2, bidirectional=True)
    own = [n for n, _ in CELLS[name](2, 2).named_parameters()]
    assert [n for n, _ in stack.named_parameters()] == [
        f"{n}_l{layer}{suffix}" for layer in (0, 1) for suffix in ("", "_reverse") for n in own]
    assert stack.state_dict()["W_l1_reverse"].shape[1] == 4  # layer 1 reads both directions
    stack.eval()  # train / eval reach the cells, which are not submodules of their own
    assert len(cells) == 4 and not any(cell.training for cell in cells)
    stack.train()
    assert all(cell.training for cell in cells)
    x = tr.Tensor(np.random.default_rng(3).standard_normal((3, 2, 2)), requires_grad=True)
    lengths = np.array([3, 1])

    def stacked(x, *params):
        output, final = stack(x, lengths=lengths)
        return (output, *state_parts(final))

    assert tr.gradcheck(stacked, (x,) + tuple(stack.parameters()))


# ============================================================================ a memory task
@pytest.mark.parametrize("name", sorted(CELLS))
def test_learns_to_recall_the_first_bit_at_each_rows_last_step(name):
    """Random bits of lengths 4..10, one-hot; the target is the first bit, read from h_n."""
    manual_seed(4)
    rng = np.random.default_rng(5)
    run = nn.Recurrent(CELLS[name](2, 8))
    readout = nn.Linear(8, 2, dtype=np.float64)
    params = run.parameters() + readout.parameters()
    optimizer = optim.Adam(params, lr=0.05)

    def batch(size):
        bits = rng.integers(0, 2, size=(10, size))
        lengths = rng.integers(4, 11, size=size)
        return np.eye(2)[bits], lengths, bits[0]

    def logits(xs, lengths):
        _, final = run(xs, lengths=lengths)
        return readout(state_parts(final)[0])

    xs, lengths, targets = batch(500)
    assert np.mean(logits(xs, lengths).data.argmax(axis=1) == targets) < 0.6  # chance before training
    for _ in range(150):
        xs, lengths, targets = batch(32)
        optimizer.zero_grad()
        F.cross_entropy(logits(xs, lengths), targets).backward()
        optimizer.step()
    xs, lengths, targets = batch(500)
    accuracy = np.mean(logits(xs, lengths).data.argmax(axis=1) == targets)
    assert accuracy > 0.98
