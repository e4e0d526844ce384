"""Tests of the tinygrad-rnn command: through ``python -m tinygrad_rnn`` once end to end, and through
``cli.main(argv)`` for each bad input, which must give one line on stderr and exit status 2."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tinygrad_rnn.functional as F
import tinygrad_rnn.optim as optim
from tinygrad_rnn import cli
from tinygrad_rnn.checkpoint import load_checkpoint

REPO = Path(__file__).resolve().parents[1]
TEXT = "the cat sat on the mat. the dog sat on the log.\n" * 12
TINY = ["--hidden", "8", "--seq-len", "5", "--batch-size", "3", "--sample-every", "0", "--eval-every", "5"]


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "tiny.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


@pytest.fixture
def trained(tmp_path, text_file, capsys):
    """A checkpoint of 5 steps on the tiny text."""
    path = tmp_path / "lm.npz"
    assert cli.main(["train", "--text", str(text_file), "--steps", "5", "--checkpoint", str(path)] + TINY) == 0
    capsys.readouterr()
    return path


def run_module(*args, cwd):
    return subprocess.run([sys.executable, "-m", "tinygrad_rnn", *args], cwd=cwd, capture_output=True, text=True,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, timeout=120)


def one_line_error(capsys, status, expected):
    """Assert the exit status and that stderr is exactly one line holding ``expected``."""
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1 and err.startswith("tinygrad-rnn") and "error:" in err, err
    assert expected in err, err
    assert "Traceback" not in err


def test_train_then_sample_with_python_m(tmp_path, text_file):
    trained = run_module("train", "--text", str(text_file), "--steps", "5", "--checkpoint", "ck/lm.npz", *TINY,
                         cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert "done: step 5" in trained.stdout and "unigram baseline" in trained.stdout
    checkpoint = tmp_path / "ck" / "lm.npz"
    assert load_checkpoint(checkpoint)[3]["step"] == 5
    sampled = run_module("sample", "--checkpoint", str(checkpoint), "--prime", "the ", "--length", "20",
                         "--seed", "3", cwd=tmp_path)
    assert sampled.returncode == 0, sampled.stderr
    text = sampled.stdout[:-1]  # print adds one newline
    assert text.startswith("the ") and len(text) == 24 and set(text) <= set(TEXT)


def test_sample_is_reproducible_with_a_seed(trained, capsys):
    outputs = []
    for _ in range(2):
        assert cli.main(["sample", "--checkpoint", str(trained), "--length", "30", "--seed", "8"]) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1] and outputs[0].startswith("\n")  # the default prime: a newline


def test_resume_takes_the_model_settings_from_the_checkpoint(trained, text_file, capsys):
    status = cli.main(["train", "--text", str(text_file), "--steps", "7", "--checkpoint", str(trained), "--resume",
                       "--sample-every", "0"])
    assert status == 0
    assert "resuming from" in capsys.readouterr().out
    model, _, _, meta = load_checkpoint(trained)
    assert meta["step"] == 7 and model.hidden_size == 8 and meta["training"]["seq_len"] == 5


@pytest.mark.parametrize("argv, expected", [
    (["train", "--text", "{tmp}/missing.txt"], "text file not found"),
    (["train", "--text", "{tmp}/empty.txt"], "text file is empty"),
    (["train", "--text", "{tmp}"], "directory"),
    (["sample", "--checkpoint", "{tmp}/missing.npz"], "missing.npz"),
    (["train", "--resume", "--checkpoint", "{tmp}/missing.npz"], "cannot resume: no checkpoint at"),
    (["sample", "--checkpoint", "{tmp}/empty.txt"], "not a readable .npz"),
    (["train", "--steps", "zero"], "invalid int value"),
    (["frobnicate"], "invalid choice"),
    ([], "required"),
])
def test_bad_input_is_one_line_and_status_two(argv, expected, tmp_path, capsys):
    (tmp_path / "empty.txt").write_text("")
    argv = [arg.replace("{tmp}", str(tmp_path)) for arg in argv]
    try:
        status = cli.main(argv)
    except SystemExit as exit_:  # argparse's own errors
        status = exit_.code
    one_line_error(capsys, status, expected)


@pytest.mark.parametrize("temperature", ["0", "-0.5"])
def test_a_temperature_that_is_not_positive_is_refused(trained, temperature, capsys):
    status = cli.main(["sample", "--checkpoint", str(trained), "--temperature", temperature])
    one_line_error(capsys, status, "temperature must be a positive number")


def test_a_prime_outside_the_vocabulary_is_refused(trained, capsys):
    status = cli.main(["sample", "--checkpoint", str(trained), "--prime", "Q"])
    one_line_error(capsys, status, "'Q'")


def test_a_checkpoint_of_another_shape_is_refused_naming_the_keys(trained, text_file, capsys):
    status = cli.main(["train", "--text", str(text_file), "--steps", "7", "--checkpoint", str(trained), "--resume",
                       "--hidden", "16"])
    one_line_error(capsys, status, "rnn.weight_hh_l0: expected shape (64, 16), got (32, 8)")


def test_a_text_outside_the_checkpoint_vocabulary_is_refused(trained, tmp_path, capsys):
    other = tmp_path / "other.txt"
    other.write_text(TEXT + "XYZ" * 10, encoding="utf-8")
    status = cli.main(["train", "--text", str(other), "--steps", "7", "--checkpoint", str(trained), "--resume"])
    one_line_error(capsys, status, "'X'")


def test_a_diverged_run_exits_with_status_one(text_file, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(optim, "clip_grad_norm_", lambda params, max_norm: float("nan"))
    status = cli.main(["train", "--text", str(text_file), "--steps", "3", "--checkpoint", str(tmp_path / "x.npz")]
                      + TINY)
    err = capsys.readouterr().err
    assert status == 1 and err.count("\n") == 1 and "step 1" in err


def test_ctrl_c_during_training_saves_the_steps_done_and_resume_continues(text_file, tmp_path, monkeypatch,
                                                                         capsys):
    real_cross_entropy, training_steps = F.cross_entropy, []

    def ctrl_c_in_step_seven(logits, targets, **kwargs):
        if logits.requires_grad:  # a training step, not a validation pass
            training_steps.append(1)
            if len(training_steps) == 7:
                raise KeyboardInterrupt
        return real_cross_entropy(logits, targets, **kwargs)

    monkeypatch.setattr(F, "cross_entropy", ctrl_c_in_step_seven)
    path = tmp_path / "lm.npz"
    argv = ["train", "--text", str(text_file), "--steps", "9", "--checkpoint", str(path)] + TINY  # evaluates at 5
    assert cli.main(argv) == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err == f"tinygrad-rnn: training interrupted after step 6: {path} holds step 6; continue with --resume\n"
    assert load_checkpoint(path)[3]["step"] == 6
    monkeypatch.undo()
    assert cli.main(argv + ["--resume"]) == 0
    assert "resuming from" in capsys.readouterr().out and load_checkpoint(path)[3]["step"] == 9


def test_train_never_replaces_a_checkpoint_without_resume_or_force(trained, text_file, capsys):
    best = trained.with_name("lm.best.npz")
    before = trained.read_bytes(), best.read_bytes()
    argv = ["train", "--text", str(text_file), "--steps", "2", "--checkpoint", str(trained)] + TINY
    one_line_error(capsys, cli.main(argv), f"{trained} and {best} already exist: continue that run with --resume, "
                                           f"or start over with --force (replacing them) or another --checkpoint")
    assert (trained.read_bytes(), best.read_bytes()) == before
    assert cli.main(argv + ["--force"]) == 0
    assert load_checkpoint(trained)[3]["step"] == load_checkpoint(best)[3]["step"] == 2


def test_every_subcommand_in_the_table_is_on_the_command_line(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    usage = capsys.readouterr().out
    for name, subcommand in cli.SUBCOMMANDS.items():
        assert isinstance(subcommand, cli.Subcommand)
        assert name in usage and subcommand.help in usage


@pytest.mark.slow
def test_the_default_train_command_runs_on_the_built_in_corpus(tmp_path, capsys):
    status = cli.main(["train", "--steps", "2", "--eval-every", "2", "--sample-every", "2",
                       "--checkpoint", str(tmp_path / "lm.npz")])
    out = capsys.readouterr().out
    assert status == 0 and "--- sample at step 2 ---" in out
    model, vocab, _, meta = load_checkpoint(tmp_path / "lm.npz")
    assert model.config()["cell"] == "lstm" and model.hidden_size == cli.TRAIN_DEFAULTS["hidden"]
    assert meta["training"]["batch_size"] == cli.TRAIN_DEFAULTS["batch_size"] and len(vocab) > 50
    assert np.isfinite(meta["best_val_loss"])


@pytest.mark.slow
def test_the_sentiment_command_reports_the_test_accuracy(capsys):
    assert cli.main(["sentiment", "--epochs", "1"]) == 0
    assert "test accuracy" in capsys.readouterr().out
