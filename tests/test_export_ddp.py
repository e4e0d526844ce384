"""An exported custom cell trains under DistributedDataParallel: two CPU processes (gloo, loopback only),
each on half of every batch, end with the weights that a single process of ours reaches on the whole batch.
The processes meet through a file (init_method file://), not a port picked in advance that another
process on the machine could take before they bind it.

DDP averages the two halves' gradients; with a loss that is a mean over the batch, that average is the
whole batch's gradient, so plain SGD takes the same steps in both runs. The reference is our engine
(tinygrad_rnn.optim.SGD on the original module), the DDP run torch's: weights agree to 1e-6 (float64).
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import tinygrad_rnn as tr  # noqa: E402
import tinygrad_rnn.nn as nn  # noqa: E402
from tinygrad_rnn.export import to_torch  # noqa: E402

STEPS, LR, WORLD = 4, 0.5, 2


class TwoTimescaleCell(nn.Cell):
    """A tuple state (fast, slow), each (N, H):

        fast' = tanh(x W^T + fast U^T + b)
        slow' = slow + sigmoid(a) * (fast' - slow)          a (H,) a learned rate per unit
        output = fast' + slow'
    """

    def __init__(self, input_size, hidden_size, seed=0):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        rng = np.random.default_rng(seed)
        self.W = nn.Parameter(rng.uniform(-0.6, 0.6, (hidden_size, input_size)))
        self.U = nn.Parameter(rng.uniform(-0.6, 0.6, (hidden_size, hidden_size)))
        self.b = nn.Parameter(rng.uniform(-0.1, 0.1, (hidden_size,)))
        self.a = nn.Parameter(rng.uniform(-1.0, 1.0, (hidden_size,)))

    def init_state(self, batch_size):
        return tr.Tensor(np.zeros((batch_size, self.hidden_size))), tr.Tensor(np.zeros((batch_size, self.hidden_size)))

    def forward(self, x, state):
        fast, slow = state
        fast = (x @ self.W.T + fast @ self.U.T + self.b).tanh()
        return fast, slow + self.a.sigmoid() * (fast - slow)

    def output(self, state):
        return state[0] + state[1]


def data():
    """Inputs (T, N, D) = (6, 8, 3), targets (N, H) = (8, 4), per-row lengths."""
    rng = np.random.default_rng(42)
    return rng.normal(size=(6, 8, 3)), rng.normal(size=(8, 4)), np.array([6, 3, 5, 6, 2, 4, 6, 1])


def worker(rank, store, path):
    """One DDP process: its half of the batch, STEPS steps of SGD; rank 0 saves the weights to ``path``.
    ``store``: the file through which the processes find each other."""
    torch.set_num_threads(1)  # two processes on a small machine: one thread each, no oversubscription
    torch.distributed.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=WORLD)
    try:
        model = torch.nn.parallel.DistributedDataParallel(to_torch(nn.Recurrent(TwoTimescaleCell(3, 4))))
        optimizer = torch.optim.SGD(model.parameters(), lr=LR)
        x, target, lengths = data()
        rows = slice(rank * 4, rank * 4 + 4)
        x, target, lengths = torch.from_numpy(x[:, rows]), torch.from_numpy(target[rows]), lengths[rows]
        for _ in range(STEPS):
            optimizer.zero_grad()
            outputs, (fast, slow) = model(x, lengths=lengths)
            loss = ((fast + slow - target) ** 2).mean() + (outputs ** 2).mean()
            loss.backward()
            optimizer.step()
        if rank == 0:
            torch.save(model.module.state_dict(), path)
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_two_process_ddp_equals_one_process_of_ours(tmp_path, monkeypatch):
    monkeypatch.setenv("GLOO_SOCKET_IFNAME", "lo")
    path = str(tmp_path / "weights.pt")
    torch.multiprocessing.spawn(worker, args=(str(tmp_path / "store"), path), nprocs=WORLD, join=True)
    trained = torch.load(path)

    ours = nn.Recurrent(TwoTimescaleCell(3, 4))
    before = ours.state_dict()
    optimizer = tr.optim.SGD(ours.parameters(), lr=LR)
    x, target, lengths = data()
    for _ in range(STEPS):
        optimizer.zero_grad()
        outputs, (fast, slow) = ours(tr.Tensor(x), lengths=lengths)
        loss = ((fast + slow - target) ** 2).mean() + (outputs ** 2).mean()
        loss.backward()
        optimizer.step()
    for name, value in ours.state_dict().items():
        assert np.abs(value - trained[name].numpy()).max() < 1e-6, name
        assert np.abs(value - before[name]).max() > 1e-3, f"{name} did not train"
