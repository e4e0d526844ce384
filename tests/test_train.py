"""Tests of tinygrad_rnn.train: checkpoints, resuming, truncated BPTT and the training loops, each
checked against an explicit computation (a hand-run of the windows, scoring streams one by one)."""
import os
import signal
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import tinygrad_rnn.functional as F
import tinygrad_rnn.optim as optim
from tinygrad_rnn.data import CharVocab, load_sentiment, stream_batches, train_val_split
from tinygrad_rnn.models import CharLM, SentimentClassifier, detach_state
from tinygrad_rnn.random import manual_seed
from tinygrad_rnn.tensor import Tensor
from tinygrad_rnn.checkpoint import CheckpointError, best_checkpoint_path, load_checkpoint, save_checkpoint
from tinygrad_rnn.train import (TrainingDiverged, TrainingInterrupted, _ctrl_c_deferred, evaluate_char_lm,
                                sentiment_accuracy, train_char_lm, train_sentiment)

REPO = Path(__file__).resolve().parents[1]

TEXT = "the cat sat on the mat. the dog sat on the log.\n" * 12
SMALL = dict(seq_len=5, batch_size=3, hidden_size=6, embedding_dim=4, val_fraction=0.2, log=lambda line: None)


def state_arrays(state):
    return [state.data] if isinstance(state, Tensor) else [s.data for s in state]


# ===================================================================== checkpoints
def test_checkpoint_round_trip_keeps_model_vocab_optimizer_and_meta(tmp_path):
    manual_seed(0)
    model = CharLM(7, hidden_size=5, embedding_dim=3, cell="gru", num_layers=2)
    vocab = CharVocab("abcdefg")
    opt = optim.Adam(model.parameters(), lr=0.01, betas=(0.8, 0.9))
    logits, state = model(np.array([[0, 1], [2, 3]]))
    F.cross_entropy(logits, np.array([[1, 2], [3, 4]])).backward()
    opt.step()
    path = tmp_path / "run.npz"
    save_checkpoint(path, model, vocab, opt, step=12, best_val_loss=1.5, carried_state=state,
                    training={"batch_size": 2})
    loaded, loaded_vocab, opt_state, meta = load_checkpoint(path)
    assert type(loaded) is CharLM and loaded.config() == model.config()
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(loaded.state_dict()[name], value)
    assert loaded_vocab == vocab
    expected = opt.state_dict()
    assert opt_state["optimizer"] == "Adam" and opt_state["param_groups"] == expected["param_groups"]
    assert set(opt_state["state"]) == set(expected["state"])  # integer keys stay integers
    for index, entry in expected["state"].items():
        assert opt_state["state"][index]["step"] == entry["step"]
        np.testing.assert_array_equal(opt_state["state"][index]["exp_avg_sq"], entry["exp_avg_sq"])
    fresh = optim.Adam(loaded.parameters())
    fresh.load_state_dict(opt_state)  # the optimizer takes the state back as it is
    assert meta["step"] == 12 and meta["best_val_loss"] == 1.5 and meta["training"] == {"batch_size": 2}
    np.testing.assert_array_equal(meta["carried_state"], state.data)


def test_a_checkpoint_of_another_shape_names_the_mismatched_keys(tmp_path):
    path = tmp_path / "run.npz"
    save_checkpoint(path, CharLM(7, hidden_size=5), CharVocab("abcdefg"))
    with pytest.raises(CheckpointError, match="rnn.weight_hh_l0: expected shape \\(32, 8\\), got \\(20, 5\\)"):
        load_checkpoint(path, model=CharLM(7, hidden_size=8))
    with pytest.raises(CheckpointError, match="missing key: rnn.weight_ih_l1"):
        load_checkpoint(path, model=CharLM(7, hidden_size=5, num_layers=2))


def test_a_file_that_is_not_a_checkpoint_is_named(tmp_path):
    path = tmp_path / "weights.npz"
    CharLM(5, hidden_size=3).save(path)
    with pytest.raises(CheckpointError, match="not a training checkpoint"):
        load_checkpoint(path)
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        load_checkpoint(tmp_path / "missing.npz")


def test_a_model_with_non_finite_weights_is_never_saved(tmp_path):
    path = tmp_path / "run.npz"
    model = CharLM(5, hidden_size=3)
    save_checkpoint(path, model, step=1)
    model.decoder.bias.data[2] = np.nan
    with pytest.raises(ValueError, match="decoder.bias"):
        save_checkpoint(path, model, step=2)
    assert load_checkpoint(path)[3]["step"] == 1


def test_best_checkpoint_path_sits_next_to_the_checkpoint():
    assert best_checkpoint_path(os.path.join("runs", "lm.npz")) == os.path.join("runs", "lm.best.npz")


# ===================================================================== resuming
def test_resuming_continues_exactly_as_an_unbroken_run(tmp_path):
    settings = dict(SMALL, eval_every=1, seed=4)
    straight = train_char_lm(TEXT, steps=3, checkpoint=tmp_path / "straight.npz", **settings)
    train_char_lm(TEXT, steps=1, checkpoint=tmp_path / "resumed.npz", **settings)
    resumed = train_char_lm(TEXT, steps=3, checkpoint=tmp_path / "resumed.npz", resume=True, **settings)
    assert resumed.step == straight.step == 3
    for name, value in straight.model.state_dict().items():
        np.testing.assert_array_equal(resumed.model.state_dict()[name], value, err_msg=name)
    _, _, straight_opt, straight_meta = load_checkpoint(tmp_path / "straight.npz")
    _, _, resumed_opt, resumed_meta = load_checkpoint(tmp_path / "resumed.npz")
    for index, entry in straight_opt["state"].items():
        assert resumed_opt["state"][index]["step"] == entry["step"] == 3
        np.testing.assert_array_equal(resumed_opt["state"][index]["exp_avg"], entry["exp_avg"])
    for got, expected in zip(resumed_meta["carried_state"], straight_meta["carried_state"]):
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("done", [1, 3, 5])
def test_resuming_with_dropout_ends_with_the_weights_of_an_unbroken_run_bit_for_bit(tmp_path, done):
    settings = dict(SMALL, dropout=0.3, eval_every=100, seed=4)
    straight = train_char_lm(TEXT, steps=6, **settings).model.state_dict()
    without_dropout = train_char_lm(TEXT, steps=6, **dict(settings, dropout=0.0)).model.state_dict()
    assert any(not np.array_equal(straight[name], value) for name, value in without_dropout.items())  # dropout acts
    path = tmp_path / "run.npz"
    train_char_lm(TEXT, steps=done, checkpoint=path, **settings)
    manual_seed(123)  # whatever the generator did in between does not matter
    F.dropout(Tensor(np.ones((50, 50))), 0.5, training=True)
    resumed = train_char_lm(TEXT, steps=6, checkpoint=path, resume=True, **settings).model.state_dict()
    for name, value in straight.items():
        np.testing.assert_array_equal(resumed[name], value, err_msg=name)
    assert load_checkpoint(path)[3]["step"] == 6


def test_resume_errors_name_the_problem(tmp_path):
    path = tmp_path / "run.npz"
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        train_char_lm(TEXT, steps=1, checkpoint=path, resume=True, **SMALL)
    with pytest.raises(ValueError, match="needs the checkpoint path"):
        train_char_lm(TEXT, steps=1, resume=True, **SMALL)
    train_char_lm(TEXT, steps=1, checkpoint=path, **SMALL)
    with pytest.raises(ValueError, match="vocabulary.*'Z'"):
        train_char_lm(TEXT + "Z", steps=2, checkpoint=path, resume=True, **SMALL)
    with pytest.raises(CheckpointError, match="rnn.weight_hh_l0"):
        train_char_lm(TEXT, steps=2, checkpoint=path, resume=True, **dict(SMALL, hidden_size=7))
    with pytest.raises(CheckpointError, match="Adam optimizer"):
        train_char_lm(TEXT, steps=2, checkpoint=path, resume=True, optimizer="sgd", **SMALL)


def test_a_fresh_run_never_replaces_an_existing_checkpoint_unless_asked(tmp_path):
    path, best = tmp_path / "run.npz", tmp_path / "run.best.npz"
    train_char_lm(TEXT, steps=3, checkpoint=path, **dict(SMALL, eval_every=3))
    before = path.read_bytes(), best.read_bytes()
    with pytest.raises(FileExistsError, match=f"{path} and {best} already exist: continue that run with "
                                              f"resume=True, or start over with overwrite=True"):
        train_char_lm(TEXT, steps=1, checkpoint=path, **SMALL)
    assert (path.read_bytes(), best.read_bytes()) == before
    path.unlink()  # the best twin alone is kept just the same
    with pytest.raises(FileExistsError, match=f"{best} already exists"):
        train_char_lm(TEXT, steps=1, checkpoint=path, **SMALL)
    assert best.read_bytes() == before[1]
    train_char_lm(TEXT, steps=1, checkpoint=path, overwrite=True, **SMALL)
    assert load_checkpoint(path)[3]["step"] == load_checkpoint(best)[3]["step"] == 1


def test_resuming_a_run_that_has_all_its_steps_says_so_and_trains_nothing(tmp_path):
    path = tmp_path / "run.npz"
    train_char_lm(TEXT, steps=2, checkpoint=path, **SMALL)
    before = load_checkpoint(path)[0].state_dict()
    lines = []
    result = train_char_lm(TEXT, steps=2, checkpoint=path, resume=True, **dict(SMALL, log=lines.append))
    assert result.step == 2 and any("nothing is trained" in line for line in lines), lines
    for name, value in result.model.state_dict().items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)


# ===================================================================== interrupted writes and divergence
def test_a_run_killed_while_writing_a_checkpoint_leaves_the_previous_one_whole(tmp_path, monkeypatch):
    path = tmp_path / "run.npz"
    train_char_lm(TEXT, steps=2, checkpoint=path, **dict(SMALL, eval_every=2))
    before = path.read_bytes()
    real_savez = np.savez

    def killed_while_writing(file, **arrays):
        real_savez(file, **arrays)
        file.truncate(100)  # part of the archive is on disk, then the process dies
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", killed_while_writing)
    with pytest.raises(KeyboardInterrupt):
        train_char_lm(TEXT, steps=4, checkpoint=path, resume=True, **dict(SMALL, eval_every=2))
    assert path.read_bytes() == before
    assert load_checkpoint(path)[3]["step"] == 2
    assert sorted(os.listdir(tmp_path)) == ["run.best.npz", "run.npz"]  # no temporary file left behind


def ctrl_c_at_training_step(monkeypatch, k):
    """Make the k-th training forward pass (step k's loss) raise KeyboardInterrupt, as Ctrl-C would."""
    real_cross_entropy, calls = F.cross_entropy, []

    def cross_entropy(logits, targets, **kwargs):
        if logits.requires_grad:  # a training step, not a validation pass
            calls.append(1)
            if len(calls) == k:
                raise KeyboardInterrupt
        return real_cross_entropy(logits, targets, **kwargs)

    monkeypatch.setattr(F, "cross_entropy", cross_entropy)


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_ctrl_c_saves_every_step_done_and_the_run_resumes_as_if_unbroken(tmp_path, monkeypatch, dropout):
    # no evaluation (and no checkpoint) before the interrupt
    settings = dict(SMALL, eval_every=100, seed=4, dropout=dropout)
    straight = train_char_lm(TEXT, steps=5, **settings)
    path = tmp_path / "run.npz"
    ctrl_c_at_training_step(monkeypatch, 4)
    with pytest.raises(KeyboardInterrupt, match=f"interrupted after step 3: {path} holds step 3") as caught:
        train_char_lm(TEXT, steps=5, checkpoint=path, **settings)
    assert isinstance(caught.value, TrainingInterrupted) and caught.value.step == caught.value.saved_step == 3
    monkeypatch.undo()
    meta = load_checkpoint(path)[3]
    assert meta["step"] == 3 and meta["best_val_loss"] is None  # no validation yet
    resumed = train_char_lm(TEXT, steps=5, checkpoint=path, resume=True, **settings)
    assert resumed.step == 5
    for name, value in straight.model.state_dict().items():
        np.testing.assert_array_equal(resumed.model.state_dict()[name], value, err_msg=name)


def on_the_third_update(monkeypatch, first):
    """Adam.step runs ``first(optimizer)`` as its third update (step 3's) begins; ``first`` may raise.

    A Ctrl-C is sent with ``signal.raise_signal`` (to this thread), not ``os.kill(os.getpid())``: the
    kernel may hand a process-directed signal to any thread, BLAS's or torch's too, and on a busy
    machine that thread may run its handler only after the update is done."""
    real_step, updates = optim.Adam.step, []

    def step(self):
        updates.append(1)
        if len(updates) == 3:
            first(self)
        real_step(self)

    monkeypatch.setattr(optim.Adam, "step", step)


def test_a_real_ctrl_c_during_an_update_takes_effect_once_the_step_is_done(tmp_path, monkeypatch):
    settings = dict(SMALL, eval_every=100, seed=4)
    three_steps = train_char_lm(TEXT, steps=3, **settings).model.state_dict()
    path = tmp_path / "run.npz"
    on_the_third_update(monkeypatch, lambda optimizer: signal.raise_signal(signal.SIGINT))  # Ctrl-C arrives
    with pytest.raises(TrainingInterrupted, match=f"interrupted after step 3: {path} holds step 3"):
        train_char_lm(TEXT, steps=5, checkpoint=path, **settings)
    model = load_checkpoint(path)[0]
    for name, value in three_steps.items():
        np.testing.assert_array_equal(model.state_dict()[name], value, err_msg=name)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


SIGINT_UNDER_SIG_DFL = """
import os, signal, sys
import tinygrad_rnn.optim as optim
from tinygrad_rnn.train import train_char_lm
signal.signal(signal.SIGINT, signal.SIG_DFL)  # as when the process was started with SIGINT at its default
real_step, updates = optim.Adam.step, []

def sigint_while_updating(self):
    updates.append(1)
    if len(updates) == 3:
        signal.raise_signal(signal.SIGINT)  # Ctrl-C arrives as step 3's update begins
    real_step(self)
    print("update", len(updates), "done", flush=True)

optim.Adam.step = sigint_while_updating
train_char_lm("the cat sat on the mat. the dog sat on the log.\\n" * 12, steps=5, checkpoint=sys.argv[1],
              seq_len=5, batch_size=3, hidden_size=6, embedding_dim=4, val_fraction=0.2, eval_every=1,
              dropout=0.3, log=lambda line: None, progress=False)
print("the run went on to its end", flush=True)
"""


def test_a_ctrl_c_during_an_update_under_sig_dfl_still_ends_the_process_once_the_update_is_done(tmp_path):
    path = tmp_path / "run.npz"
    done = subprocess.run([sys.executable, "-c", SIGINT_UNDER_SIG_DFL, str(path)], capture_output=True, text=True,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert done.returncode == -signal.SIGINT, (done.returncode, done.stdout, done.stderr)
    assert done.stdout.splitlines() == ["update 1 done", "update 2 done", "update 3 done"]
    assert load_checkpoint(path)[3]["step"] == 2  # the process died before step 3's evaluation and save


def with_sigint_handler(handler, run):
    """``run()`` with ``handler`` as the SIGINT handler; -> (what run returned, the handler after it)."""
    before = signal.signal(signal.SIGINT, handler)
    try:
        result = run()
        return result, signal.getsignal(signal.SIGINT)
    finally:
        signal.signal(signal.SIGINT, before)


def test_a_ctrl_c_deferred_during_an_update_goes_to_the_previous_handler_once_the_update_is_done():
    updated, calls = [], []

    def update():
        with _ctrl_c_deferred():
            signal.raise_signal(signal.SIGINT)
            updated.append(1)  # reached: the Ctrl-C waits for the block's end

    def handler(signum, frame):
        calls.append((signum, len(updated)))

    assert with_sigint_handler(handler, update) == (None, handler)
    assert calls == [(signal.SIGINT, 1)]  # called once, after the block
    assert with_sigint_handler(signal.SIG_IGN, update) == (None, signal.SIG_IGN)
    assert len(updated) == 2 and calls == [(signal.SIGINT, 1)]  # ignored, as it would have been


def test_a_sigint_handler_installed_outside_python_is_left_alone(monkeypatch):
    # signal.getsignal gives None for a handler installed from C: signal.signal could not put it back
    real_signal, installed = signal.signal, []
    monkeypatch.setattr(signal, "getsignal", lambda signum: None)
    monkeypatch.setattr(signal, "signal", lambda *args: installed.append(args) or real_signal(*args))
    with _ctrl_c_deferred():
        pass
    result = train_char_lm(TEXT, steps=2, **SMALL)
    assert result.step == 2 and installed == []


def test_ctrl_c_in_the_middle_of_an_update_keeps_the_last_whole_checkpoint(tmp_path, monkeypatch):
    settings = dict(SMALL, eval_every=2, seed=4)
    two_steps = train_char_lm(TEXT, steps=2, **settings).model.state_dict()
    path = tmp_path / "run.npz"

    def interrupted_half_way(optimizer):  # step 3: one parameter moves, then Ctrl-C
        optimizer.params[0].data += 1.0
        raise KeyboardInterrupt

    on_the_third_update(monkeypatch, interrupted_half_way)
    with pytest.raises(TrainingInterrupted, match=f"during the update of step 3: {path} holds step 2") as caught:
        train_char_lm(TEXT, steps=5, checkpoint=path, **settings)
    assert caught.value.step == 2 and caught.value.saved_step == 2
    model, _, _, meta = load_checkpoint(path)
    assert meta["step"] == 2
    for name, value in two_steps.items():
        np.testing.assert_array_equal(model.state_dict()[name], value, err_msg=name)


def test_a_non_finite_loss_stops_at_its_step_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "run.npz"
    real_cross_entropy = F.cross_entropy
    training_losses = []

    def nan_at_the_third_step(logits, targets, **kwargs):
        loss = real_cross_entropy(logits, targets, **kwargs)
        if loss.requires_grad:  # a training step, not a validation pass
            training_losses.append(loss)
            if len(training_losses) == 3:
                return loss * float("nan")
        return loss

    monkeypatch.setattr(F, "cross_entropy", nan_at_the_third_step)
    expected = f"at step 3: the loss is nan .*not saved; {path} holds step 2\\. Try"
    with pytest.raises(TrainingDiverged, match=expected) as caught:
        train_char_lm(TEXT, steps=6, checkpoint=path, **dict(SMALL, eval_every=1))
    assert caught.value.step == 3
    model, _, _, meta = load_checkpoint(path)
    assert meta["step"] == 2
    assert all(np.isfinite(value).all() for value in model.state_dict().values())


def test_a_non_finite_gradient_stops_before_the_update(tmp_path, monkeypatch):
    path = tmp_path / "run.npz"
    monkeypatch.setattr(optim, "clip_grad_norm_", lambda params, max_norm: float("inf"))
    with pytest.raises(TrainingDiverged, match="at step 1: the gradient norm is inf.*nothing was saved"):
        train_char_lm(TEXT, steps=3, checkpoint=path, **SMALL)
    assert not path.exists()


# ===================================================================== truncated BPTT
def windows_of(text, batch_size, seq_len, val_fraction):
    vocab = CharVocab(text)
    train_ids, _ = train_val_split(vocab.encode(text), val_fraction)
    return vocab, list(stream_batches(train_ids, batch_size, seq_len))


def test_the_carried_state_is_detached_so_window_two_sends_no_gradient_to_window_one():
    manual_seed(2)
    model = CharLM(6, hidden_size=4, embedding_dim=3)
    ids = np.random.default_rng(0).integers(0, 6, size=(8, 2))
    _, state = model(ids[:4])
    reached = []
    for part in state:
        part.register_hook(lambda grad: reached.append(grad))
    logits, _ = model(ids[4:], detach_state(state))
    F.cross_entropy(logits, ids[4:]).backward()
    assert reached == []
    logits, _ = model(ids[4:], state)  # without the detach it would reach window one
    F.cross_entropy(logits, ids[4:]).backward()
    assert len(reached) == 2


def test_two_training_steps_equal_an_explicit_run_of_the_two_windows():
    settings = dict(SMALL, optimizer="sgd", lr=0.5, clip=1e9, seed=9)
    result = train_char_lm(TEXT, steps=2, **settings)

    vocab, windows = windows_of(TEXT, settings["batch_size"], settings["seq_len"], settings["val_fraction"])
    manual_seed(9)
    model = CharLM(len(vocab), settings["hidden_size"], settings["embedding_dim"])
    (x1, y1), (x2, y2) = windows[:2]
    logits, state = model(x1)
    F.cross_entropy(logits, y1).backward()
    for p in model.parameters():
        p.data -= 0.5 * p.grad
        p.grad = None
    constant = tuple(Tensor(s.data.copy()) for s in state)  # window one's final state, as plain numbers
    logits, _ = model(x2, constant)
    F.cross_entropy(logits, y2).backward()
    for p in model.parameters():
        p.data -= 0.5 * p.grad
    for name, value in model.state_dict().items():
        np.testing.assert_allclose(result.model.state_dict()[name], value, rtol=1e-5, atol=1e-6, err_msg=name)


def test_the_carried_state_is_that_of_one_unbroken_run(tmp_path):
    settings = dict(SMALL, optimizer="sgd", lr=0.0, seed=5, eval_every=3)
    path = tmp_path / "run.npz"
    result = train_char_lm(TEXT, steps=3, checkpoint=path, **settings)
    _, windows = windows_of(TEXT, settings["batch_size"], settings["seq_len"], settings["val_fraction"])
    whole = np.concatenate([inputs for inputs, _ in windows[:3]])  # (3 S, B): each stream unbroken
    _, state = result.model(whole)
    carried = load_checkpoint(path)[3]["carried_state"]
    for got, expected in zip(carried, state_arrays(state)):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_a_new_epoch_starts_the_streams_from_the_zero_state(tmp_path):
    settings = dict(SMALL, optimizer="sgd", lr=0.0, seed=5)
    _, windows = windows_of(TEXT, settings["batch_size"], settings["seq_len"], settings["val_fraction"])
    path = tmp_path / "run.npz"
    result = train_char_lm(TEXT, steps=len(windows) + 1, checkpoint=path, **settings)
    _, state = result.model(windows[0][0])  # the first window again, from zeros
    for got, expected in zip(load_checkpoint(path)[3]["carried_state"], state_arrays(state)):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


# ===================================================================== evaluation and learning
@pytest.mark.parametrize("batch_size, seq_len", [(1, 200), (3, 7)])
def test_validation_loss_is_the_mean_score_of_the_streams(batch_size, seq_len):
    manual_seed(1)
    vocab = CharVocab(TEXT)
    model = CharLM(len(vocab), hidden_size=5, dtype=np.float64)
    ids = vocab.encode(TEXT[:400])
    length = (len(ids) // batch_size - 1) // seq_len * seq_len + 1  # each stream: whole windows + 1
    streams = ids[:batch_size * length].reshape(batch_size, length)
    expected = np.mean([model.score(vocab.decode(stream), vocab)["nats_per_char"] for stream in streams])
    assert evaluate_char_lm(model, ids, batch_size, seq_len) == pytest.approx(expected, rel=1e-10)


def test_training_beats_the_unigram_baseline_and_logs_progress_and_samples():
    lines = []
    result = train_char_lm(TEXT, steps=60, seq_len=8, batch_size=4, hidden_size=24, lr=0.02, val_fraction=0.2,
                           eval_every=30, log_every=20, sample_every=60, sample_length=30, log=lines.append, seed=0)
    assert result.step == 60 and [entry["step"] for entry in result.history] == [30, 60]
    assert result.val_loss < 0.5 * result.unigram_loss
    assert result.best_val_loss == min(entry["val_loss"] for entry in result.history)
    assert any("chars/s" in line and line.startswith("step 20/60") for line in lines)
    assert any("unigram baseline" in line and line.startswith("step 60: validation") for line in lines)
    assert any(line.startswith("--- sample at step 60 ---") for line in lines)


def test_progress_goes_to_a_tqdm_bar_when_tqdm_is_installed(monkeypatch):
    made = []

    class FakeBar:
        def __init__(self, total, initial, unit):
            self.total, self.count, self.postfix, self.closed, self.written = total, initial, [], False, []
            made.append(self)

        def update(self, n):
            self.count += n

        def set_postfix_str(self, text):
            self.postfix.append(text)

        def write(self, text):
            self.written.append(text)

        def close(self):
            self.closed = True

    monkeypatch.setitem(sys.modules, "tqdm", types.SimpleNamespace(tqdm=FakeBar))
    train_char_lm(TEXT, steps=4, log_every=2, eval_every=4, progress=True, log=print,
                  **{k: v for k, v in SMALL.items() if k != "log"})
    (bar,) = made
    assert bar.total == 4 and bar.count == 4 and bar.closed
    assert len(bar.postfix) == 2 and "chars/s" in bar.postfix[0]
    assert any(line.startswith("step 4: validation") for line in bar.written)


def test_bad_training_arguments_are_named():
    with pytest.raises(ValueError, match="steps or epochs, not both"):
        train_char_lm(TEXT, steps=2, epochs=1, **SMALL)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        train_char_lm(TEXT, optimizer="lbfgs", **SMALL)
    with pytest.raises(ValueError, match="too short"):
        train_char_lm("abcdefgh" * 2, steps=1, **SMALL)
    with pytest.raises(ValueError, match="eval_every must be a positive integer"):
        train_char_lm(TEXT, steps=1, eval_every=0, **SMALL)
    with pytest.raises(ValueError, match="clip .* must be a positive number, got 0"):
        train_char_lm(TEXT, steps=1, clip=0, **SMALL)


def test_epochs_count_passes_over_the_windows():
    _, windows = windows_of(TEXT, SMALL["batch_size"], SMALL["seq_len"], SMALL["val_fraction"])
    assert train_char_lm(TEXT, epochs=2, **SMALL).step == 2 * len(windows)


# ===================================================================== sentiment
def test_the_sentiment_classifier_reaches_full_test_accuracy():
    lines = []
    assert train_sentiment(3, log=lines.append) == 1.0
    assert len(lines) == 3 and lines[-1].startswith("epoch 3:") and "test accuracy 100.0%" in lines[-1]


def test_the_sentiment_accuracy_is_the_fraction_of_correct_argmaxes():
    manual_seed(0)
    test = load_sentiment("test")
    model = SentimentClassifier(len(test.vocab), embedding_dim=4, hidden_size=5)
    predictions = [int(np.argmax(model(test.ids[i:i + 1, :length]).data)) for i, length in enumerate(test.lengths[:40])]
    subset = type(test)(test.ids[:40], test.lengths[:40], test.labels[:40], test.sentences[:40], test.vocab)
    assert sentiment_accuracy(model, subset) == np.mean(np.array(predictions) == test.labels[:40])
