"""Nothing a user made is lost: an unwritable checkpoint path is refused before training, killed
saves leave nothing behind for long and are never read as checkpoints, broken checkpoint files are
refused naming the file and the field, and the process's cache of compiled programs stays bounded.
(That training never replaces a checkpoint unasked and that Ctrl-C keeps the steps done are tested
with the training loop and the command, in test_train.py and test_cli.py.)"""
import glob
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import tinygrad_rnn as tr
import tinygrad_rnn.functional as F
from tinygrad_rnn import _files, cli
from tinygrad_rnn.accelerator import compiler, tape
from tinygrad_rnn.checkpoint import CheckpointError, load_checkpoint
from tinygrad_rnn.train import train_char_lm

REPO = Path(__file__).resolve().parents[1]
TEXT = "the cat sat on the mat. the dog sat on the log.\n" * 12
SMALL = dict(seq_len=5, batch_size=3, hidden_size=6, embedding_dim=4, val_fraction=0.2, log=lambda line: None)
TINY = ["--hidden", "8", "--seq-len", "5", "--batch-size", "3", "--sample-every", "0", "--eval-every", "5"]


# ===================================================================== the compiled-program cache
@pytest.mark.usefixtures("accelerator_on")
def test_the_compiled_program_cache_stays_bounded_and_results_stay_exact():
    """More distinct batch sizes than the cache holds: the accelerator keeps at most COMPILED_PROGRAMS
    programs (least recently used dropped), and a size run again after its programs were dropped
    still gives the op-by-op core's output and gradients."""
    tr.manual_seed(0)
    lstm = tr.nn.LSTM(2, 3, dtype=np.float64)
    rng = np.random.default_rng(0)

    def run(batch_size):
        x = tr.Tensor(rng.standard_normal((4, batch_size, 2)), requires_grad=True)  # T = 4: replayed
        output, (h_n, c_n) = lstm(x)
        (output.sum() + (h_n * c_n).sum()).backward()
        gradients = [x.grad] + [p.grad for p in lstm.parameters()]
        lstm.zero_grad()
        return x, output.data, gradients

    for batch_size in range(1, tape.COMPILED_PROGRAMS + 30):
        run(batch_size)
        assert compiler.steps_kept() <= tape.COMPILED_PROGRAMS
    assert compiler.steps_kept() == tape.COMPILED_PROGRAMS  # full: every batch size was run by a compiled step
    for batch_size in (1, 2, tape.COMPILED_PROGRAMS + 29):  # dropped long ago, and the latest
        x, output, gradients = run(batch_size)
        with tr.fast(False):
            x_again = tr.Tensor(x.data, requires_grad=True)
            expected, (h_n, c_n) = lstm(x_again)
            (expected.sum() + (h_n * c_n).sum()).backward()
        np.testing.assert_allclose(output, expected.data, rtol=1e-12, atol=1e-14)
        for got, want in zip(gradients, [x_again.grad] + [p.grad for p in lstm.parameters()]):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
        lstm.zero_grad()


# ===================================================================== killed saves
KILLED_SAVES = """
import os, signal, sys
import numpy as np
import tinygrad_rnn as tr

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

def half_written(file, **arrays):
    file.write(b"PK\\x03\\x04 and then the power went out")
    die()

for where, path in zip(sys.argv[1::2], sys.argv[2::2]):  # each save in a child process killed mid-save
    pid = os.fork()
    if pid == 0:
        if where == "write":
            np.savez = half_written
        else:
            os.replace = die  # the temporary file is complete, the rename never happens
        tr.nn.Linear(2, 2).save(path)
    os.waitpid(pid, 0)
"""


def kill_saves(*saves):
    """Run each (where, path) save in a process killed while writing ("write") or just before
    renaming its complete temporary file over ``path`` ("rename"); -> the files the kills left."""
    folder = os.path.dirname(saves[0][1])
    before = set(os.listdir(folder))
    subprocess.run([sys.executable, "-c", KILLED_SAVES, *[part for save in saves for part in save]],
                   env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, check=True, timeout=60)
    return sorted(set(os.listdir(folder)) - before)


def test_a_save_removes_the_leftovers_of_killed_saves_to_its_path_and_no_other_file(tmp_path):
    run, other = str(tmp_path / "run.npz"), str(tmp_path / "other.npz")
    mine = ["notes.txt", ".tmp-abc123.npz", ".run.npz.tmp-draft", "run.npz.tmp-0123456789abcdef"]
    for name in mine:
        (tmp_path / name).write_text("the user's")
    left = kill_saves(("write", run), ("write", run), ("rename", run), ("write", other))
    # each killed save to run.npz removed the one before's leftover: one is left per path
    assert [name.split(".tmp-")[0] for name in left] == [".other.npz", ".run.npz"], left
    assert not (tmp_path / "run.npz").exists()

    tr.nn.Linear(2, 2).save(run)
    remaining = sorted(os.listdir(tmp_path))
    assert remaining == sorted(mine + ["run.npz"] + [name for name in left if name.startswith(".other.npz.")])
    assert all((tmp_path / name).read_text() == "the user's" for name in mine)


def test_a_save_removes_an_earlier_versions_stale_leftovers_and_keeps_fresh_ones(tmp_path):
    """Earlier versions' saves left ``.tmp-XXXXXXXX.npz`` (mkstemp's names: 8 of a-z0-9_), which
    name no target: the next save in that folder removes those untouched for an hour (no save takes
    that long), keeps a fresh one (a save of an older version may be writing it now), and a load
    refuses both."""
    stale, fresh = tmp_path / ".tmp-k3j9x_2a.npz", tmp_path / ".tmp-0qz81mwe.npz"
    for leftover in (stale, fresh):
        tr.nn.Linear(2, 2).save(leftover.with_name("x.npz"))
        os.replace(leftover.with_name("x.npz"), leftover)  # a complete archive, as a killed rename leaves
    an_hour_ago = time.time() - _files.STALE_SECONDS - 60
    os.utime(stale, (an_hour_ago, an_hour_ago))
    for leftover in (stale, fresh):
        with pytest.raises(ValueError, match="temporary file of a save that was killed"):
            tr.nn.Linear(2, 2).load(leftover)
    tr.nn.Linear(2, 2).save(tmp_path / "run.npz")
    assert sorted(os.listdir(tmp_path)) == [fresh.name, "run.npz"]


def test_a_leftover_of_a_killed_save_is_never_read_as_a_checkpoint(tmp_path, capsys):
    run = str(tmp_path / "run.npz")
    (leftover,) = kill_saves(("rename", run))  # a complete archive that never became run.npz
    with pytest.raises(ValueError, match=f"{leftover}.*killed before it finished.*load run.npz"):
        tr.nn.Linear(2, 2).load(tmp_path / leftover)
    assert sorted(glob.glob(str(tmp_path / "*.npz"))) == []
    assert cli.main(["train", "--resume", "--checkpoint", run]) == 2
    assert "cannot resume: no checkpoint at" in capsys.readouterr().err


# ===================================================================== an unwritable checkpoint path
@pytest.mark.parametrize("where", ["under a file", "a folder"])
def test_a_checkpoint_path_that_cannot_be_written_is_refused_before_the_first_step(where, tmp_path, monkeypatch):
    (tmp_path / "afile").write_text("not a folder")
    path = tmp_path / "afile" / "run.npz" if where == "under a file" else tmp_path
    steps = []
    real_cross_entropy = F.cross_entropy
    monkeypatch.setattr(F, "cross_entropy", lambda *args, **kw: steps.append(1) or real_cross_entropy(*args, **kw))
    with pytest.raises(OSError, match=f"cannot write {re.escape(str(path))}: ") as caught:
        train_char_lm(TEXT, steps=2, checkpoint=path, **SMALL)
    assert steps == [] and ".tmp" not in str(caught.value)


def test_the_train_command_names_an_unwritable_checkpoint_in_one_line(tmp_path, capsys):
    (tmp_path / "afile").write_text("not a folder")
    path = tmp_path / "afile" / "sub" / "lm.npz"
    text = tmp_path / "tiny.txt"
    text.write_text(TEXT, encoding="utf-8")
    assert cli.main(["train", "--text", str(text), "--steps", "2", "--checkpoint", str(path)] + TINY) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and f"cannot write {path}: " in captured.err, captured.err
    assert "step 1" not in captured.out and ".tmp" not in captured.err


# ===================================================================== broken checkpoint files
def rewritten(path, change):
    """Rewrite the checkpoint at ``path`` with ``change(arrays)`` applied to its arrays."""
    with np.load(path) as archive:
        arrays = {name: archive[name] for name in archive.files}
    change(arrays)
    with open(path, "wb") as file:
        np.savez(file, **arrays)


def setting(key, value):
    return lambda arrays: arrays.__setitem__(key, value)


def removing(key):
    return lambda arrays: arrays.pop(key)


def json_with(key, **changes):
    def change(arrays):
        arrays[key] = np.array(json.dumps({**json.loads(arrays[key].item()), **changes}))
    return change


def json_without(key, entry):
    def change(arrays):
        value = json.loads(arrays[key].item())
        del value[entry]
        arrays[key] = np.array(json.dumps(value))
    return change


BROKEN = {  # what is wrong -> (how to break a good checkpoint, the field the error must name)
    "config not JSON": (setting("config.json", np.array("{'model': CharLM")), "'config.json' is not valid JSON"),
    "config a number": (setting("config.json", np.array(3)), "'config.json' must be a JSON text"),
    "config a list": (setting("config.json", np.array("[1, 2]")), "'config.json' must be a JSON object, got list"),
    "config missing": (removing("config.json"), "no config.json"),
    "config lacks a size": (json_without("config.json", "hidden_size"), "'config.json'.*'hidden_size'"),
    "config of a bad kind": (json_with("config.json", model="Transformer"), "'config.json'.*Transformer"),
    "config of a bad type": (json_with("config.json", hidden_size="many"), "'config.json'.*many"),
    "step a fraction": (setting("step", np.array(2.5)), "'step' must be a non-negative integer, got 2.5"),
    "step a word": (setting("step", np.array("ten")), "'step' must be a non-negative integer, got 'ten'"),
    "step negative": (setting("step", np.array(-3)), "'step' must be a non-negative integer, got -3"),
    "step an array": (setting("step", np.array([1, 2])), "'step' must be a non-negative integer, got an array"),
    "step missing": (removing("step"), "no step"),
    "best loss a word": (setting("best_val_loss", np.array("low")), "'best_val_loss' must be a number"),
    "vocab of floats": (setting("vocab", np.array([97.5, 98.0])), "'vocab' must be"),
    "vocab not characters": (setting("vocab", np.array([-1, 97])), "'vocab' must be"),
    "vocab repeated": (setting("vocab", np.array([97, 97])), "'vocab'.*repeated"),
    "vocab of another size": (setting("vocab", np.array([97, 98])), "'vocab' has 2 characters.*vocab_size"),
    "weights of text": (lambda arrays: arrays.__setitem__("model/decoder.bias", arrays["model/decoder.bias"]
                                                          .astype(str)), "'model/decoder.bias' must hold"),
    "optimizer not JSON": (setting("optimizer.json", np.array("{")), "'optimizer.json' is not valid JSON"),
    "optimizer array gone": (removing("optimizer/state/0/exp_avg"), "'optimizer.json'.*optimizer/state/0/exp_avg"),
    "carried state not JSON": (setting("carried_state.json", np.array("(")), "'carried_state.json' is not valid"),
    "carried state gone": (removing("carried_state/0"), "'carried_state.json'.*carried_state/0"),
    "training a list": (setting("training.json", np.array("[]")), "'training.json' must be a JSON object"),
}


@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory):
    """The bytes of a checkpoint of 2 steps, with optimizer and carried state."""
    path = tmp_path_factory.mktemp("good") / "run.npz"
    train_char_lm(TEXT, steps=2, checkpoint=path, **dict(SMALL, eval_every=2))
    return path.read_bytes()


@pytest.mark.parametrize("broken", BROKEN)
def test_a_broken_checkpoint_is_refused_naming_the_file_and_the_field(broken, good_checkpoint, tmp_path, capsys):
    change, expected = BROKEN[broken]
    path = tmp_path / "run.npz"
    path.write_bytes(good_checkpoint)
    rewritten(path, change)
    with pytest.raises(CheckpointError, match=f"{re.escape(str(path))}.*{expected}"):
        load_checkpoint(path)
    for argv in (["sample", "--checkpoint", str(path)], ["train", "--resume", "--checkpoint", str(path)]):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and str(path) in err and re.search(expected, err), (argv, err)


@pytest.mark.parametrize("keep", [0.5, 0.95])
def test_a_truncated_checkpoint_is_refused_naming_the_file(keep, good_checkpoint, tmp_path, capsys):
    path = tmp_path / "run.npz"
    path.write_bytes(good_checkpoint[:int(len(good_checkpoint) * keep)])
    with pytest.raises(ValueError, match=f"{re.escape(str(path))} is not a readable .npz file"):
        load_checkpoint(path)
    assert cli.main(["train", "--resume", "--checkpoint", str(path)]) == 2
    assert str(path) in capsys.readouterr().err
