"""Time one training step of the main job here, with the accelerator on and off, and in torch.

    python benchmarks/bench_main_job.py [--rounds 7] [--steps-per-round 4] [--threads N]

The step is the one ``tinygrad-rnn train`` (the README's first command) takes with its defaults
(``cli.TRAIN_DEFAULTS``, ``train_char_lm``): a window ids (T=64, N=32) of the built-in corpus
(V=100 characters) and its targets (the next characters), float32 throughout;

    e = Embedding(V, 256)[ids] (T, N, 256) -> LSTM(256 -> 256), from the state carried from the
    previous window, detached -> dropout(p=0.25) -> Linear(256 -> V): logits (T, N, V)
    loss = mean cross-entropy over the T * N next characters
    zero the gradients, backward, clip_grad_norm_(5), Adam(lr=2e-3) step

Rows: ours with the accelerator on (what the command runs), ours with it off (``tr.fast(False)``,
the plain core), and torch eager (``torch.nn.Embedding``, ``torch.nn.LSTM``, ``torch.nn.Dropout``,
``torch.nn.Linear``, ``torch.nn.functional.cross_entropy``, ``torch.nn.utils.clip_grad_norm_``,
``torch.optim.Adam``), when torch is installed. torch starts from our weights, and before any timing
both compute the loss of one window without dropout: they must agree to 1e-5, or the torch row says so.

Threads: both libraries get the same count, --threads (default: the count NumPy's BLAS started
with): ours through threadpoolctl (if it is missing, ours keeps BLAS's own count and the first line
says so), torch through ``torch.set_num_threads``.

Timing: after two untimed steps each, --rounds rounds; a round times --steps-per-round consecutive
steps of each row (ours on and off in an order rotated from round to round, then torch after a
0.3 s pause, so that neither library's idle worker threads spin beside the other's work). "median
ms" is the median over rounds of the time per step; "x ours" is the median over rounds of (the row's
time / ours with the accelerator on, in the same round). The load average is printed before and after.
"""
import argparse
import collections
import contextlib
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # time this checkout's package
sys.path.insert(1, str(Path(__file__).resolve().parent))

import tinygrad_rnn as tr  # noqa: E402
from tinygrad_rnn.cli import TRAIN_DEFAULTS  # noqa: E402
from tinygrad_rnn.data import CharVocab, builtin_corpus, stream_batches  # noqa: E402
from tinygrad_rnn.models import CharLM, detach_state  # noqa: E402
from _timing import format_table, load_report  # noqa: E402

LR, CLIP, TOLERANCE = 2e-3, 5.0, 1e-5
HEADERS = ("implementation", "median ms / step", "x ours (accelerator on)", "note")


def windows(ids):
    """Endless (ids, targets) windows of the main job's shape, the streams read over and over."""
    while True:
        yield from stream_batches(ids, TRAIN_DEFAULTS["batch_size"], TRAIN_DEFAULTS["seq_len"])


def ours(vocab_size):
    """Our model and optimizer with the command's defaults, and step(ids, targets) -> loss."""
    model = CharLM(vocab_size, TRAIN_DEFAULTS["hidden"], None, TRAIN_DEFAULTS["cell"], TRAIN_DEFAULTS["layers"],
                   TRAIN_DEFAULTS["dropout"])
    opt = tr.optim.Adam(model.parameters(), lr=LR)
    params = model.parameters()
    carried = [None]

    def step(ids, targets):
        logits, state = model(ids, carried[0])
        loss = tr.functional.cross_entropy(logits, targets)
        opt.zero_grad()
        loss.backward()
        tr.optim.clip_grad_norm_(params, CLIP)
        opt.step()
        carried[0] = detach_state(state)
        return float(loss.item())
    return model, step


def torch_twin(torch, weights, vocab_size):
    """The same model in torch, from our weights {name: ndarray}, and its step(ids, targets) -> loss."""
    hidden = TRAIN_DEFAULTS["hidden"]

    class TorchCharLM(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = torch.nn.Embedding(vocab_size, hidden)
            self.rnn = torch.nn.LSTM(hidden, hidden, num_layers=TRAIN_DEFAULTS["layers"])
            self.dropout = torch.nn.Dropout(TRAIN_DEFAULTS["dropout"])
            self.decoder = torch.nn.Linear(hidden, vocab_size)

        def forward(self, ids, state=None):
            outputs, state = self.rnn(self.embedding(ids), state)
            return self.decoder(self.dropout(outputs)), state

    model = TorchCharLM()
    model.load_state_dict({name: torch.from_numpy(np.array(value)) for name, value in weights.items()})
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    carried = [None]

    def loss_of(ids, targets):
        logits, state = model(torch.from_numpy(ids), carried[0])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, vocab_size), torch.from_numpy(targets).reshape(-1))
        return loss, state

    def step(ids, targets):
        loss, state = loss_of(ids, targets)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        opt.step()
        carried[0] = tuple(s.detach() for s in state)
        return float(loss.item())
    return model, step, loss_of


def same_loss(torch, our_model, torch_model, torch_loss_of, ids, targets):
    """'' if both models give the loss of (ids, targets) without dropout to TOLERANCE, else why not."""
    our_model.eval()
    torch_model.eval()
    with tr.no_grad(), torch.no_grad():
        logits, _ = our_model(ids)
        mine = float(tr.functional.cross_entropy(logits, targets).item())
        theirs = float(torch_loss_of(ids, targets)[0])
    our_model.train()
    torch_model.train()
    error = abs(mine - theirs) / abs(mine)
    return "" if error <= TOLERANCE else f"DIFFERENT MODEL: loss {theirs:.6f} vs ours {mine:.6f}"


def blas_threads(count):
    """A context that runs NumPy's BLAS with ``count`` threads, and a note (why it cannot, or '')."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext(), "threadpoolctl is not installed: ours keeps BLAS's own thread count"
    return threadpool_limits(limits=count, user_api="blas"), ""


def blas_count():
    """The thread count NumPy's BLAS started with (the CPU count when threadpoolctl cannot say)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return len(os.sched_getaffinity(0))
    return max([info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"] or [1])


def time_steps(step, batches, count):
    """Seconds per step over ``count`` consecutive steps."""
    started = time.perf_counter()
    for _ in range(count):
        step(*next(batches))
    return (time.perf_counter() - started) / count


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds (default 7)")
    parser.add_argument("--steps-per-round", type=int, default=4, help="steps timed per row and round (default 4)")
    parser.add_argument("--threads", type=int, default=blas_count(), help="threads for both libraries "
                                                                          "(default: NumPy BLAS's own count)")
    args = parser.parse_args(argv)
    limit, note = blas_threads(args.threads)
    print(f"the main job's step: LSTM hidden {TRAIN_DEFAULTS['hidden']}, window {TRAIN_DEFAULTS['seq_len']} x "
          f"{TRAIN_DEFAULTS['batch_size']}, float32; {args.threads} threads for both libraries" + (f" ({note})" if note
                                                                                                  else ""))
    print(load_report("before"))
    text = builtin_corpus()
    vocab = CharVocab(text)
    batches = windows(vocab.encode(text))
    tr.manual_seed(0)
    our_model, our_step = ours(len(vocab))
    rows = {"ours, accelerator on": our_step, "ours, accelerator off": tr.fast(False)(our_step)}
    torch_note = ""
    try:
        import torch
    except ImportError:
        torch, torch_note = None, "torch is not installed"
    if torch is not None:
        torch.set_num_threads(args.threads)
        weights = {name: p.data for name, p in our_model.named_parameters()}
        torch_model, torch_step, torch_loss_of = torch_twin(torch, weights, len(vocab))
        torch_note = same_loss(torch, our_model, torch_model, torch_loss_of, *next(batches))
        if not torch_note:
            rows[f"torch {torch.__version__} eager (nn.LSTM)"] = torch_step
    times = collections.defaultdict(list)
    with limit:
        for step in rows.values():
            time_steps(step, batches, 2)
        order = collections.deque(name for name in rows if name.startswith("ours"))
        for _ in range(args.rounds):
            for name in order:
                times[name].append(time_steps(rows[name], batches, args.steps_per_round))
            order.rotate(-1)
            for name in rows:
                if not name.startswith("ours"):
                    time.sleep(0.3)
                    times[name].append(time_steps(rows[name], batches, args.steps_per_round))
                    time.sleep(0.3)
    print(load_report("after"))
    reference = times["ours, accelerator on"]
    table = [(name, f"{1e3 * statistics.median(seconds):.1f}",
              f"{statistics.median(mine / ours for mine, ours in zip(seconds, reference)):.2f}", "")
             for name, seconds in times.items()]
    if torch_note:
        table.append(("torch eager (nn.LSTM)", "-", "-", torch_note))
    print(format_table(HEADERS, table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
