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


# ===================================================================== check --cell FILE.py:CLASS
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SMALL = ["--input-size", "3", "--hidden", "4", "--seq-len", "5", "--samples", "4"]
USER_FILES = {  # more files of a user's, next to the cell and its references
    "broken.py": "import numpy as np\nraise RuntimeError('boom while importing')\n",
    "cells.py": """\
import numpy as np
import tinygrad_rnn.nn as nn


class NotACell:
    pass


class ThreeArgs(nn.Cell):
    def __init__(self, input_size, hidden_size, extra):
        super().__init__()


class Exploding(nn.Cell):
    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.hidden_size = hidden_size
        self.W = nn.Parameter(np.zeros((hidden_size, input_size)))

    def forward(self, x, h):
        return (x @ self.W.T)[:, :2] + h
""",
    "references.py": """\
from derive_your_own import MGUReference as GatedUnitReference


class NoBackward:
    def step_forward(self, x, h, params):
        return h, None


class BadShapes(GatedUnitReference):
    def step_backward(self, dh, cache):
        dx, dh_previous, dparams = super().step_backward(dh, cache)
        dparams["U"] = dparams["U"][:, :-1]
        return dx, dh_previous, dparams


class Crashes(GatedUnitReference):
    def step_backward(self, dh, cache):
        return cache["h"]


instance = GatedUnitReference()
""",
}


@pytest.fixture
def user_files(tmp_path):
    """The user's files in tmp_path: examples/custom_cell.py (MinimalGatedUnit, float32 parameters),
    examples/derive_your_own.py (MGUReference, and ForgetsFhInStateGradient: wrong only in the state
    gradient it passes back) and the USER_FILES."""
    for name in ("custom_cell.py", "derive_your_own.py"):
        (tmp_path / name).write_text((EXAMPLES / name).read_text())
    for name, text in USER_FILES.items():
        (tmp_path / name).write_text(text)
    return tmp_path


def check(folder, *args):
    return cli.main(["check", *[arg.replace("{tmp}", str(folder)) for arg in args], *SMALL])


def test_check_a_user_cell_two_way(user_files, capsys):
    assert check(user_files, "--cell", "{tmp}/custom_cell.py:MinimalGatedUnit") == 0
    out = capsys.readouterr().out
    header = out.splitlines()[0]
    # built as MinimalGatedUnit(input_size, hidden_size), float32 parameters cast to the default --dtype float64
    assert header.startswith("Recurrent(MinimalGatedUnit(3, 4))  float64  T=5 N=3 D=3 H=4  lengths [5, ") and "OK" in header
    assert "two-way check" in out and "three-way check" not in out and "FAIL" not in out
    for name in ("cell.W_f", "cell.U_f", "cell.b_f", "cell.W", "cell.U", "cell.b", "x", "state0"):
        assert f"\n{name} " in out
    assert out.rstrip().splitlines()[-1].startswith("cross-check OK: MinimalGatedUnit from ")


def test_check_a_user_cell_three_way_with_its_reference(user_files, capsys):
    status = check(user_files, "--cell", "{tmp}/custom_cell.py:MinimalGatedUnit",
                   "--reference", "{tmp}/derive_your_own.py:MGUReference", "--lengths", "5,2", "--seed", "3")
    out = capsys.readouterr().out
    assert status == 0, out
    assert "T=5 N=2 D=3 H=4  lengths [5, 2]" in out
    assert "three-way check: autograd vs hand-derived (yours: MGUReference)" in out and "FAIL" not in out
    assert "three-way against MGUReference" in out


def test_a_wrong_reference_fails_and_says_where(user_files, capsys):
    status = check(user_files, "--cell", "{tmp}/custom_cell.py:MinimalGatedUnit",
                   "--reference", "{tmp}/derive_your_own.py:ForgetsFhInStateGradient")
    out = capsys.readouterr().out
    assert status == 1
    assert "three-way" in out and "FAIL" in out and "<- FAIL" in out
    # its error is only in the state gradient it passes back: exact at T-1 = 4, first wrong at t=3
    assert "t=3" in out and "t=4" not in out
    assert out.rstrip().splitlines()[-1].startswith("FAILED: MinimalGatedUnit")


def test_a_reference_object_is_used_as_is_and_its_file_can_import_its_neighbours(user_files, capsys):
    assert check(user_files, "--cell", "{tmp}/custom_cell.py:MinimalGatedUnit", "--reference",
                 "{tmp}/references.py:instance", "--dtype", "float32") == 0
    out = capsys.readouterr().out
    assert "float32" in out.splitlines()[0] and "three-way" in out


def test_two_user_files_of_the_same_name_do_not_collide(user_files, capsys):
    for folder, name in (("a", "custom_cell.py"), ("b", "derive_your_own.py")):
        (user_files / folder).mkdir()
        (user_files / folder / "mine.py").write_text((user_files / name).read_text())
    (user_files / "b" / "custom_cell.py").write_text((user_files / "custom_cell.py").read_text())  # its import
    assert check(user_files, "--cell", "{tmp}/a/mine.py:MinimalGatedUnit",
                 "--reference", "{tmp}/b/mine.py:MGUReference") == 0
    assert "three-way" in capsys.readouterr().out


def test_the_user_check_is_reproducible_from_its_seed(user_files, capsys):
    outputs = []
    for seed in ("1", "1", "2"):
        assert check(user_files, "--cell", "{tmp}/custom_cell.py:MinimalGatedUnit", "--seed", seed) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1] != outputs[2]


def test_the_built_in_check_takes_the_new_sizes_too(capsys):
    assert cli.main(["check", "--cell", "lstm", "--lengths", "5,1", "--hidden", "3", "--input-size", "2",
                     "--seq-len", "5", "--samples", "4"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("LSTM(2, 3)  float64  T=5 N=2 D=2 H=3  lengths [5, 1]") and "all 1 cross-check OK" in out


@pytest.mark.parametrize("args, expected", [
    (["--cell", "{tmp}/missing.py:GatedUnit"], "--cell: file not found: {tmp}/missing.py"),
    (["--cell", "{tmp}/custom_cell.py"], "must be path/to/file.py:Name"),
    (["--cell", "{tmp}/broken.py:Cell"], "importing {tmp}/broken.py failed: RuntimeError: boom while importing "
                                         "(broken.py, line 2"),
    (["--cell", "{tmp}/custom_cell.py:Nope"], "{tmp}/custom_cell.py has no Nope; the nn.Cell subclasses it defines: "
                                             "MinimalGatedUnit"),
    (["--cell", "{tmp}/cells.py:NotACell"], "NotACell in {tmp}/cells.py is not an nn.Cell subclass"),
    (["--cell", "{tmp}/cells.py:ThreeArgs"], "ThreeArgs(3, 4) failed: the check builds the cell as "
                                             "ThreeArgs(input_size, hidden_size) from {tmp}/cells.py: TypeError:"),
    (["--cell", "{tmp}/cells.py:Exploding"], "the cell Exploding ({tmp}/cells.py) raised during the check: "
                                             "ValueError:"),
    (["--cell", "{tmp}/custom_cell.py:MinimalGatedUnit", "--reference", "{tmp}/references.py:NoBackward"],
     "NoBackward in {tmp}/references.py lacks step_backward"),
    (["--cell", "{tmp}/custom_cell.py:MinimalGatedUnit", "--reference", "{tmp}/references.py:Nope"],
     "{tmp}/references.py has no Nope; the objects with step_forward and step_backward it defines: BadShapes, "
     "Crashes, GatedUnitReference, instance"),
    (["--cell", "{tmp}/custom_cell.py:MinimalGatedUnit", "--reference", "{tmp}/references.py:BadShapes"],
     "the reference BadShapes ({tmp}/references.py) is at fault: ValueError: step_backward at t=4: the gradient "
     "of 'U' has shape (4, 3), expected (4, 4)"),
    (["--cell", "{tmp}/custom_cell.py:MinimalGatedUnit", "--reference", "{tmp}/references.py:Crashes"],
     "the reference Crashes ({tmp}/references.py) is at fault: TypeError: tuple indices must be integers"),
    (["--cell", "{tmp}/custom_cell.py:MinimalGatedUnit,lstm"], "not both"),
    (["--cell", "gru", "--reference", "{tmp}/references.py:instance"], "--reference goes with --cell FILE.py:CLASS"),
    (["--cell", "{tmp}/custom_cell.py:MinimalGatedUnit", "--lengths", "5,x"], "--lengths must be comma-separated ints"),
    (["--cell", "{tmp}/custom_cell.py:MinimalGatedUnit", "--lengths", "5,2", "--batch", "3"],
     "--lengths gives 2 lengths but --batch is 3"),
    (["--cell", "{tmp}/custom_cell.py:MinimalGatedUnit", "--lengths", "5,6"], "lengths must lie in 1..5"),
])
def test_a_bad_user_cell_or_reference_is_one_line_and_status_two(user_files, args, expected, capsys):
    one_line_error(capsys, check(user_files, *args), expected.replace("{tmp}", str(user_files)))
