"""Outgrowing one machine: a cell designed and checked here, trained by PyTorch across processes, scored here.

The cell is a gated independently-recurrent unit: each hidden unit has one recurrent weight u_j
(IndRNN) and the input decides how much of the state to rewrite:

    r  = sigmoid(x W_r^T + b_r)                  the rewrite gate, from the input alone  (N, H)
    h~ = tanh(x W^T + u * h + b)                 u (H,): one recurrent weight per unit  (N, H)
    h' = h + r * (h~ - h)

The task is the adding problem over variable lengths: each step carries a value in [0, 1) and a
marker; the target is the sum of the two marked values, read from the state at the sequence's own
last step (lengths), through a Linear layer. Predicting the mean scores an MSE of about 1/6.

1. check here: the cell's gradients against finite differences (tr.gradcheck, float64);
2. export: tinygrad_rnn.export.to_torch gives torch modules with our parameter names; on the same
   input they return our numbers;
3. train: two CPU processes under DistributedDataParallel (gloo, 127.0.0.1), each on half of every batch;
4. bring back: from_torch copies the trained weights into our model, which is scored here.

Run:  pip install -e ".[torch]" && python examples/scale_with_torch.py
(11 s on two cores at load average 2, up to 40 s on a busy machine: 3 s of training, the rest
starting the two processes)
"""
import os
import socket
import tempfile
import time

import numpy as np
import torch

import tinygrad_rnn as tr
import tinygrad_rnn.nn as nn
from tinygrad_rnn.export import from_torch, to_torch

STEPS, HIDDEN, BATCH, TRAIN_STEPS, LR, WORLD = 16, 24, 64, 150, 0.02, 2


class GatedIndependentCell(nn.Cell):
    """x (N, D), h (N, H) -> h' (N, H) by the equations of the module docstring."""

    def __init__(self, input_size, hidden_size, dtype=np.float64):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        for name, shape in {"W_r": (hidden_size, input_size), "b_r": (hidden_size,), "W": (hidden_size, input_size),
                            "u": (hidden_size,), "b": (hidden_size,)}.items():
            setattr(self, name, nn.init.recurrent_default_(nn.Parameter(np.empty(shape, dtype=dtype)), hidden_size))

    def forward(self, x, h):
        r = (x @ self.W_r.T + self.b_r).sigmoid()
        candidate = (x @ self.W.T + self.u * h + self.b).tanh()
        return h + r * (candidate - h)


class Adder(nn.Module):
    """x (T, N, 2), lengths (N,) -> the predicted sum (N,): a Linear layer on h at each row's last step."""

    def __init__(self, hidden_size=HIDDEN):
        super().__init__()
        self.rnn = nn.Recurrent(GatedIndependentCell(2, hidden_size))
        self.head = nn.Linear(hidden_size, 1, dtype=np.float64)

    def forward(self, x, lengths=None):
        return self.head(self.rnn(x, lengths=lengths)[1]).reshape(-1)


class TorchAdder(torch.nn.Module):
    """The same model in torch, built from the exported parts (so its state_dict keys are Adder's)."""

    def __init__(self, ours):
        super().__init__()
        self.rnn, self.head = to_torch(ours.rnn), to_torch(ours.head)

    def forward(self, x, lengths=None):
        return self.head(self.rnn(x, lengths=lengths)[1]).reshape(-1)


def adding_problem(count, seed):
    """Inputs (T, count, 2), targets (count,), lengths (count,) in T/2..T; the two markers within each length."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(STEPS // 2, STEPS + 1, size=count)
    x = np.zeros((STEPS, count, 2))
    x[:, :, 0] = rng.random((STEPS, count))
    for n, length in enumerate(lengths):
        x[rng.choice(length, size=2, replace=False), n, 1] = 1.0
    targets = (x[:, :, 0] * x[:, :, 1]).sum(axis=0)
    return x, targets, lengths


def mean_squared_error(model, x, targets, lengths):
    with tr.no_grad():
        return float(((model(tr.Tensor(x), lengths=lengths) - targets) ** 2).mean().item())


def train_on_one_process(rank, weights, path):
    """One of the DDP processes: the model from ``weights`` (our state_dict), Adam on its half of every
    batch; DDP averages the two halves' gradients. Rank 0 saves the trained weights to ``path``."""
    torch.set_num_threads(1)  # two processes on a small machine: one thread each, no oversubscription
    torch.distributed.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        ours = Adder()
        ours.load_state_dict(weights)
        model = torch.nn.parallel.DistributedDataParallel(TorchAdder(ours))
        optimizer = torch.optim.Adam(model.parameters(), lr=LR)
        x, targets, lengths = adding_problem(BATCH * TRAIN_STEPS, seed=1)
        started = time.perf_counter()
        for step in range(TRAIN_STEPS):
            batch = slice(step * BATCH + rank * BATCH // WORLD, step * BATCH + (rank + 1) * BATCH // WORLD)
            loss = ((model(torch.from_numpy(x[:, batch]), lengths=lengths[batch]) - torch.from_numpy(targets[batch]))
                    ** 2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if rank == 0 and step % 50 == 0:
                print(f"  step {step:3d}  loss on this process's half-batch {loss.item():.4f}")
        if rank == 0:
            print(f"  trained in {time.perf_counter() - started:.1f} s (the rest is starting the processes)")
            torch.save(model.module.state_dict(), path)
    finally:
        torch.distributed.destroy_process_group()


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main():
    tr.manual_seed(0)
    model = Adder()
    test = adding_problem(1000, seed=2)

    # 1. the cell's gradients against finite differences, here, in float64
    cell = model.rnn.cell
    x, _, lengths = adding_problem(3, seed=3)
    x = tr.Tensor(x[:5], requires_grad=True)
    tr.gradcheck(lambda x, *params: model.rnn(x, lengths=[5, 3, 4])[0], [x, *cell.parameters()])
    print("1. gradcheck: the cell's gradients match finite differences")

    # 2. exported: the same numbers in torch
    exported = TorchAdder(model)
    ours_out = model(tr.Tensor(test[0]), lengths=test[2]).data
    torch_out = exported(torch.from_numpy(test[0]), lengths=test[2]).detach().numpy()
    print(f"2. exported to torch: largest difference from ours {np.abs(ours_out - torch_out).max():.1e}; "
          f"parameters {list(exported.state_dict())}")
    print(f"   before training: test MSE {mean_squared_error(model, *test):.4f} (predicting the mean: about 0.167)")

    # 3. trained by two processes under DDP
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()), GLOO_SOCKET_IFNAME="lo")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "trained.pt")
        print(f"3. training on {WORLD} processes (DDP, gloo, 127.0.0.1): {TRAIN_STEPS} steps of batch {BATCH}")
        torch.multiprocessing.spawn(train_on_one_process, args=(model.state_dict(), path), nprocs=WORLD, join=True)
        exported.load_state_dict(torch.load(path))
    print(f"   done in {time.perf_counter() - started:.1f} s")

    # 4. the trained weights back here, scored by our engine
    from_torch(exported, model)
    error = mean_squared_error(model, *test)
    print(f"4. brought back: test MSE {error:.4f} scored here")
    return error


if __name__ == "__main__":
    main()
