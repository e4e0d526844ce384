"""Training loops: a character language model by truncated BPTT, and the sentiment classifier.

Truncated BPTT (``train_char_lm``): the training ids are cut into B parallel streams read S steps
at a time (``data.stream_batches``). The state at the end of a window is carried into the next
one, so the forward pass sees each stream unbroken, but it is detached first, so gradients flow
back at most S steps. A new pass over the streams (epoch) starts from the zero state.

Randomness: ``manual_seed(seed)`` fixes the initial weights; then, at the start of step n, the
library's generator (``tinygrad_rnn.random``), which dropout draws from, is reseeded from
``np.random.SeedSequence([seed, n])``. Each step's dropout masks therefore depend on the seed and
the step number only, not on the steps done before in this process, so a run resumed from its
checkpoint at step k (after Ctrl-C, say) draws the same masks from step k + 1 on as an unbroken
run and ends with the same weights bit for bit, with or without dropout. No generator state is
saved in the checkpoint, so every checkpoint resumes this way.

Writing and reading the checkpoints a run saves and resumes from is ``tinygrad_rnn.checkpoint``'s job.
"""
import contextlib
import itertools
import math
import os
import signal
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from . import functional as F
from . import optim
from ._files import check_writable
from .checkpoint import (CheckpointError, best_checkpoint_path, checkpoint_parts, checkpoint_to_resume,
                         refuse_to_overwrite, required_vocab, save_checkpoint, saved_vocab)
from .data import CharVocab, load_sentiment, num_windows, stream_batches, train_val_split, unigram_loss
from .models import (CharLM, SentimentClassifier, default_prime, detach_state, evaluating,
                     positive_int)
from .random import manual_seed
from .tensor import Tensor, no_grad
from .threads import BlasThreads, parse_threads

__all__ = ["TrainingDiverged", "TrainingInterrupted", "TrainResult", "OPTIMIZERS", "evaluate_char_lm", "train_char_lm",
           "train_sentiment", "sentiment_accuracy"]

OPTIMIZERS = {"adam": optim.Adam, "sgd": optim.SGD, "adagrad": optim.Adagrad, "rmsprop": optim.RMSprop}


class TrainingDiverged(RuntimeError):
    """The loss or the gradient became non-finite; ``step`` is the step at which it happened."""

    def __init__(self, message, step):
        super().__init__(message)
        self.step = step


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped ``train_char_lm``: ``step`` steps were done, and the checkpoint on disk holds
    step ``saved_step`` (None: it holds nothing of this run)."""

    def __init__(self, message, step, saved_step):
        super().__init__(message)
        self.step, self.saved_step = step, saved_step


# ===================================================================== the character language model
@dataclass
class TrainResult:
    """What ``train_char_lm`` returns. Losses are cross-entropies in nats per character;
    ``history`` holds one dict (step, train_loss, val_loss, seconds) per evaluation."""

    model: CharLM
    vocab: CharVocab
    step: int
    train_loss: float
    val_loss: float
    best_val_loss: float
    unigram_loss: float
    seconds: float
    history: list = field(default_factory=list)


@no_grad()
def evaluate_char_lm(model, ids, batch_size, seq_len):
    """Mean cross-entropy (nats per character) of ``model`` on the id sequence ``ids`` (n,), read
    as up to ``batch_size`` streams of windows of ``seq_len`` with the state carried (eval mode).
    The streams and windows shrink to fit a short sequence; the few ids that fill no window are
    left out."""
    batch_size = max(1, min(batch_size, len(ids) // (seq_len + 1)))
    seq_len = max(1, min(seq_len, len(ids) // batch_size - 1))
    state, total, count = None, 0.0, 0
    with evaluating(model):
        for inputs, targets in stream_batches(ids, batch_size, seq_len):
            logits, state = model(inputs, state)
            total += float(F.cross_entropy(logits, targets, reduction="sum").item())
            count += targets.size
    return total / count


def train_char_lm(text, *, steps=None, epochs=None, seq_len=64, batch_size=32, lr=2e-3, clip=5.0,
                  optimizer="adam", cell="lstm", hidden_size=128, embedding_dim=None, num_layers=1, dropout=0.0,
                  val_fraction=0.1, eval_every=200, log_every=50, sample_every=None, sample_length=200,
                  temperature=0.8, checkpoint=None, resume=False, overwrite=False, log=print, progress=True,
                  seed=0, threads="auto"):
    """Train a ``CharLM`` on ``text`` by truncated BPTT (see the module docstring); a TrainResult.

    Length: ``steps`` optimizer updates in all (a resumed run continues up to that total), or
    ``epochs`` passes over the training streams; 1000 steps when neither is given. Each step:
    forward one (seq_len, batch_size) window from the carried state, mean cross-entropy,
    backward, ``clip_grad_norm_(clip)``, an ``optimizer`` step (adam, sgd, adagrad or rmsprop) at
    learning rate ``lr``. The last ``val_fraction`` of the text is held out.

    Every ``eval_every`` steps and at the end: the validation loss is logged against the
    unigram baseline, the checkpoint (if ``checkpoint`` is a path) is written, and so is
    ``best_checkpoint_path(checkpoint)`` when the validation loss is the best so far. Every
    ``log_every`` steps: the training loss and the speed in characters per second, as a tqdm bar
    if tqdm is installed and ``progress`` is set and ``log`` is print, else a line through
    ``log``. Every ``sample_every`` steps and at the end (if set): a sample of ``sample_length``
    characters at ``temperature``.

    ``threads``: NumPy's BLAS threads during the steps, ``"auto"`` (1 or the count BLAS started
    with, whichever gives faster steps, re-measured as the run goes: ``tinygrad_rnn.threads``) or
    a fixed count; BLAS gets its own count back when the run ends. Needs threadpoolctl; without it
    the threads are left alone and the log says so.

    ``resume``: start from ``checkpoint`` (its weights, vocabulary, optimizer state, step and
    carried state; the model arguments must describe the same shape, and the ``lr`` given now
    applies); with the same arguments it ends as an unbroken run would, bit for bit, dropout
    included (each step's dropout is drawn from ``seed`` and the step number, see the module
    docstring). Without ``resume``, a run never replaces an existing checkpoint (or its best twin)
    unless ``overwrite`` is set: CheckpointExistsError (a FileExistsError) naming the files, before
    anything is trained. ``seed`` fixes the initial weights, the dropout masks and the samples.

    Ctrl-C (KeyboardInterrupt) during training writes the checkpoint of the last whole step (if
    ``checkpoint`` is a path and it is not on disk yet) and raises TrainingInterrupted, a
    KeyboardInterrupt whose message says which step the checkpoint holds, to resume from. A Ctrl-C
    that arrives during a parameter update takes effect once the update is done; a
    KeyboardInterrupt raised inside the update itself writes nothing (the checkpoint keeps the last
    step saved).

    Raises TrainingDiverged, naming the step, when the loss or the gradient norm is not finite;
    the checkpoint on disk is then the last good one. Raises ValueError for bad arguments, text
    with characters outside a resumed vocabulary, or a checkpoint that does not fit, and OSError
    naming ``checkpoint`` when it cannot be written (checked before the first step).
    """
    total_steps = _total_steps(steps, epochs)
    for name, value in (("eval_every", eval_every), ("log_every", log_every)):
        positive_int(name, value)
    if isinstance(clip, bool) or not isinstance(clip, (int, float)) or not clip > 0:
        raise ValueError(f"clip (the largest gradient norm) must be a positive number, got {clip!r}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {optimizer!r}")
    parse_threads(threads)
    if resume and checkpoint is None:
        raise ValueError("resume=True needs the checkpoint path to resume from")
    if not isinstance(text, str) or len(text) < 2:
        raise ValueError("train_char_lm needs a text of at least 2 characters")
    if checkpoint is not None:
        if not (resume or overwrite):
            refuse_to_overwrite(checkpoint)
        check_writable(checkpoint)
    manual_seed(seed)
    saved = checkpoint_to_resume(checkpoint) if resume else None
    vocab = required_vocab(saved_vocab(saved, checkpoint), checkpoint) if resume else CharVocab(text)
    try:
        ids = vocab.encode(text)
    except ValueError as error:
        raise ValueError(f"the text does not fit the checkpoint's vocabulary (resume on the text it was "
                         f"trained on): {error}") from None
    train_ids, val_ids = train_val_split(ids, val_fraction)
    if len(val_ids) < 2:
        raise ValueError(f"the validation part (val_fraction={val_fraction}) has {len(val_ids)} character; "
                         f"it needs at least 2 (one to read, one to predict)")
    windows = num_windows(train_ids, batch_size, seq_len)
    if epochs is not None:
        total_steps = epochs * windows
    baseline = unigram_loss(train_ids, val_ids, len(vocab))

    model = CharLM(len(vocab), hidden_size, embedding_dim, cell, num_layers, dropout)
    opt = OPTIMIZERS[optimizer](model.parameters(), lr=lr)
    training = {"batch_size": batch_size, "seq_len": seq_len, "train_chars": len(train_ids)}
    step, best, state = 0, math.inf, None
    if saved:
        step, best, state = _restore(saved, checkpoint, model, opt, training, log)
        opt.lr = lr
    log(f"{len(text):,} characters ({len(vocab)} distinct): {len(train_ids):,} train, {len(val_ids):,} validation; "
        f"{windows} windows of {batch_size} x {seq_len} per epoch; unigram baseline {baseline:.3f} nats/char")
    if saved:
        done = f": it has done the {total_steps} steps asked for, so nothing is trained" if step >= total_steps else ""
        log(f"resuming from {os.fspath(checkpoint)} at step {step}{done}")

    params = model.parameters()
    prime = default_prime(vocab)
    position = step % windows
    batches = itertools.islice(stream_batches(train_ids, batch_size, seq_len), position, None)
    progress_meter = _Progress(log, total_steps, step, log_every, progress and log is print)
    log = progress_meter.log
    blas_threads = BlasThreads(threads, log=log)
    log(blas_threads.describe())
    checkpoints = _Checkpoints(checkpoint, step if saved else None)
    history, train_loss, val_loss = [], math.nan, math.nan
    updating = False  # True while the parameters and optimizer state are between step and step + 1

    def progress():
        """The run so far, as save_checkpoint's arguments."""
        return dict(model=model, vocab=vocab, optimizer=opt, step=step, carried_state=state, training=training,
                    best_val_loss=best if math.isfinite(best) else None)

    started = time.perf_counter()
    try:
        while step < total_steps:
            if position == 0:
                state = None  # a new epoch: every stream starts again from its beginning
                batches = stream_batches(train_ids, batch_size, seq_len)
            inputs, targets = next(batches)
            manual_seed(_step_seed(seed, step + 1))  # step + 1's dropout, the same after a resume
            with blas_threads.step():
                train_loss, new_state = _gradients(model, opt, params, inputs, targets, state, clip, step + 1,
                                                   checkpoints)
                with _ctrl_c_deferred():
                    updating = True
                    opt.step()
                    step, state, position = step + 1, new_state, (position + 1) % windows
                    updating = False
            progress_meter.update(step, train_loss, inputs.size)
            if step % eval_every == 0 or step == total_steps:
                val_loss = evaluate_char_lm(model, val_ids, batch_size, seq_len)
                history.append({"step": step, "train_loss": train_loss, "val_loss": val_loss,
                                "seconds": time.perf_counter() - started})
                improved, best = val_loss < best, min(best, val_loss)
                log(f"step {step}: validation {val_loss:.3f} nats/char (unigram baseline {baseline:.3f})"
                    + (", best so far" if improved else ""))
                checkpoints.save(improved, **progress())
            if sample_every and (step % sample_every == 0 or step == total_steps):
                sample = model.sample(vocab, prime, sample_length, temperature, seed=seed + step)
                log(f"--- sample at step {step} ---\n{sample}\n---")
    except KeyboardInterrupt:
        if not updating and step != checkpoints.last_saved_step and step > 0:
            checkpoints.save(False, **progress())
        raise checkpoints.interrupted(step, updating) from None
    finally:
        progress_meter.close()
        blas_threads.close()
    if not history:
        val_loss = evaluate_char_lm(model, val_ids, batch_size, seq_len)
        best = min(best, val_loss)
    return TrainResult(model, vocab, step, train_loss, val_loss, best, baseline, time.perf_counter() - started,
                       history)


def _gradients(model, opt, params, inputs, targets, state, clip, step, checkpoints):
    """The gradients of one truncated-BPTT update on the window (inputs, targets), each (S, B),
    from the carried ``state``, clipped, in the parameters' ``.grad`` (the caller then takes the
    optimizer step); returns (the window's mean loss, the final state detached for the next window).
    Raises TrainingDiverged when the loss or the gradient norm is not finite."""
    logits, new_state = model(inputs, state)
    loss = F.cross_entropy(logits, targets)
    loss_value = float(loss.item())
    if not math.isfinite(loss_value):
        raise checkpoints.diverged("loss", loss_value, step)
    opt.zero_grad()
    loss.backward()
    norm = optim.clip_grad_norm_(params, clip)
    if not math.isfinite(norm):
        raise checkpoints.diverged("gradient norm", norm, step)
    return loss_value, detach_state(new_state)


def _step_seed(seed, step):
    """The seed of step ``step``'s random draws (dropout): a function of the run's ``seed`` and the step only."""
    return np.random.SeedSequence([seed, step])


@contextlib.contextmanager
def _ctrl_c_deferred():
    """Ctrl-C (SIGINT) during the block takes effect when the block ends, so a parameter update is
    never cut in half: the previous SIGINT handler is put back, and a Ctrl-C caught meanwhile is
    raised again (``signal.raise_signal``), so that handler deals with it as it would have: Python's
    default raises KeyboardInterrupt, SIG_DFL ends the process, SIG_IGN ignores it. Nothing is
    deferred outside the main thread (only it receives signals) or when the handler was installed
    from outside Python (``signal.getsignal`` gives None: it could not be put back)."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is None):
        yield
        return
    received = []
    previous = signal.signal(signal.SIGINT, lambda *caught: received.append(caught))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received:
            signal.raise_signal(signal.SIGINT)


class _Checkpoints:
    """A run's checkpoint at ``path`` (None: none is written) and its best-validation twin, and the
    last step saved (what a diverged or interrupted run leaves on disk)."""

    def __init__(self, path, last_saved_step):
        self.path, self.last_saved_step = path, last_saved_step

    def save(self, improved, **pieces):
        """Write the checkpoint, and the best one too when the validation loss ``improved``."""
        if self.path is None:
            return
        save_checkpoint(self.path, **pieces)
        if improved:
            save_checkpoint(best_checkpoint_path(self.path), **pieces)
        self.last_saved_step = pieces["step"]

    def kept(self):
        """What is on disk for the run, in words."""
        if self.path is None:
            return "no checkpoint was written"
        if self.last_saved_step is None:
            return f"nothing was saved to {os.fspath(self.path)}"
        return f"{os.fspath(self.path)} holds step {self.last_saved_step}"

    def diverged(self, what, value, step):
        """The TrainingDiverged to raise when ``what`` is the non-finite ``value`` at ``step``."""
        return TrainingDiverged(f"training stopped at step {step}: the {what} is {value} (not finite), so that step "
                                f"is not saved; {self.kept()}. Try a lower learning rate or a smaller clip.", step)

    def interrupted(self, step, updating):
        """The TrainingInterrupted to raise after ``step`` steps (``updating``: during the next one's update)."""
        when = f"during the update of step {step + 1}" if updating else f"after step {step}"
        return TrainingInterrupted(f"training interrupted {when}: {self.kept()}", step, self.last_saved_step)


def _total_steps(steps, epochs):
    """The run's length in steps, after checking ``steps`` and ``epochs`` (``epochs`` is turned into
    steps by the caller once the windows per epoch are known)."""
    if steps is not None and epochs is not None:
        raise ValueError("give steps or epochs, not both")
    if epochs is not None:
        positive_int("epochs", epochs)
    return 1000 if steps is None else positive_int("steps", steps)


def _restore(arrays, path, model, opt, training, log):
    """Load the checkpoint read from ``path`` into ``model`` and ``opt``; (step, best val loss, carried state)."""
    _, _, optimizer_state, meta = checkpoint_parts(arrays, path, model, None)
    if optimizer_state is None:
        raise CheckpointError(f"{os.fspath(path)} has no optimizer state to resume from")
    try:
        opt.load_state_dict(optimizer_state)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"the optimizer state in {os.fspath(path)} does not fit: {error}") from None
    carried = meta["carried_state"]
    state = None
    if carried is not None and meta["training"] == training:
        state = Tensor(carried) if isinstance(carried, np.ndarray) else tuple(Tensor(s) for s in carried)
    elif carried is not None:
        log(f"the batch size, window length or text differ from the checkpoint's {meta['training']}: "
            f"the carried state starts from zero")
    best = meta["best_val_loss"]
    return meta["step"], math.inf if best is None else best, state


class _Progress:
    """The training loss and speed every ``every`` steps: a tqdm bar when tqdm is importable and
    ``bar`` is set (other log lines then go through ``tqdm.write``), else a line through ``log``."""

    def __init__(self, log, total, initial, every, bar):
        self.every, self.total = every, total
        self.bar = None
        if bar:
            try:
                from tqdm import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self.bar = tqdm(total=total, initial=initial, unit="step")
        self.log = self.bar.write if self.bar is not None else log
        self._reset()

    def _reset(self):
        self.loss_sum, self.steps, self.chars, self.since = 0.0, 0, 0, time.perf_counter()

    def update(self, step, loss, chars):
        self.loss_sum += loss
        self.steps += 1
        self.chars += chars
        if self.bar is not None:
            self.bar.update(1)
        if step % self.every and step != self.total:
            return
        speed = self.chars / max(time.perf_counter() - self.since, 1e-9)
        mean_loss = self.loss_sum / self.steps
        if self.bar is not None:
            self.bar.set_postfix_str(f"loss {mean_loss:.3f}, {speed:,.0f} chars/s")
        else:
            self.log(f"step {step}/{self.total}  loss {mean_loss:.3f}  {speed:,.0f} chars/s")
        self._reset()

    def close(self):
        if self.bar is not None:
            self.bar.close()


# ===================================================================== the sentiment classifier
def train_sentiment(epochs=5, *, batch_size=32, lr=1e-2, cell="lstm", embedding_dim=16, hidden_size=32,
                    clip=5.0, model=None, seed=0, log=print):
    """Train a many-to-one ``SentimentClassifier`` on ``data.load_sentiment("train")`` and return
    its accuracy on the test split (a float in [0, 1]).

    Each epoch visits the 2000 training sentences in a random order, in minibatches of
    ``batch_size`` with each sentence's own length; Adam at ``lr``, gradients clipped to norm
    ``clip``. ``model``: a classifier to train in place (e.g. with a custom cell); by default one
    is built from ``cell``, ``embedding_dim`` and ``hidden_size``. ``seed`` fixes the initial
    weights and the order. One line per epoch goes through ``log``.
    """
    positive_int("epochs", epochs)
    train, test = load_sentiment("train"), load_sentiment("test")
    manual_seed(seed)
    if model is None:
        model = SentimentClassifier(len(train.vocab), embedding_dim, hidden_size, cell)
    opt = optim.Adam(model.parameters(), lr=lr)
    params = model.parameters()
    order_rng = np.random.default_rng(seed)
    accuracy = math.nan
    for epoch in range(1, epochs + 1):
        started, loss_sum = time.perf_counter(), 0.0
        model.train()
        for batch in np.array_split(order_rng.permutation(len(train)), math.ceil(len(train) / batch_size)):
            loss = F.cross_entropy(model(train.ids[batch], train.lengths[batch]), train.labels[batch])
            opt.zero_grad()
            loss.backward()
            optim.clip_grad_norm_(params, clip)
            opt.step()
            loss_sum += float(loss.item()) * len(batch)
        accuracy = sentiment_accuracy(model, test)
        log(f"epoch {epoch}: train loss {loss_sum / len(train):.4f}, test accuracy {accuracy:.1%} "
            f"({time.perf_counter() - started:.1f} s)")
    return accuracy


@no_grad()
def sentiment_accuracy(model, data):
    """The fraction of ``data``'s sentences whose label is the argmax of the model's logits (eval mode)."""
    with evaluating(model):
        predictions = model(data.ids, data.lengths).data.argmax(axis=1)
    return float(np.mean(predictions == data.labels))
