"""The gradflow commands beyond ‖∂L/∂h_t‖: --jacobians, --clip, --contributions and --param, as functions and
through ``tinygrad-rnn gradflow``: their tables carry the API's numbers (tested against independent
computations in the other test_gradflow files), they run without matplotlib and write PNGs with it, each
mode to its own default file, and an exact zero is drawn on a log axis.
"""
import numpy as np
import pytest

import tinygrad_rnn.gradflow as gradflow
from tinygrad_rnn.cli import main
from conftest import table_rows

SMALL = dict(seq_len=12, hidden=3, input_size=2)


def test_jacobians_command_prints_measured_bound_and_step_norms(no_matplotlib, tmp_path):
    out = tmp_path / "j.png"
    text = gradflow.jacobians_command(("rnn", "lstm"), out=str(out), **SMALL)
    assert "matplotlib is not installed" in text and not out.exists()
    xs, models = gradflow.demo_models(("rnn", "lstm"), **SMALL)
    expected = [gradflow.jacobians(models[name], xs) for name in ("rnn", "lstm")]
    rows = table_rows(text)
    assert sorted(rows) == list(range(12))
    for t, values in rows.items():
        want = [v for e in expected for v in (e.measured[t], e.bound[t], e.step_norms[t])]
        np.testing.assert_allclose(values, want, rtol=1e-3)
    assert "lstm: at t=0 measured" in text


def test_clipping_command_prints_the_cosines(no_matplotlib):
    setup = dict(SMALL, seq_len=40, nonlinearity="relu", init_name="identity", scale=1.1)
    text = gradflow.clipping_command(threshold=0.5, out=None, **setup)
    xs, models = gradflow.demo_models("rnn", **setup)
    compared = gradflow.compare_clipping(models["rnn"], xs, 0.5)
    assert f"cos(g', g) = {compared.cosine['norm']:.6f}" in text and compared.cosine["norm"] == pytest.approx(1.0)
    assert f"cos(g', g) = {compared.cosine['value']:.6f}" in text
    assert "W_hh = 1.1·identity" in text


def test_contribution_matrix_command_prints_the_long_range_fractions(no_matplotlib):
    text = gradflow.contribution_matrix_command(("gru",), out=None, **SMALL)
    xs, models = gradflow.demo_models("gru", **SMALL)
    matrix = gradflow.contribution_matrix(models["gru"], xs)
    rows = table_rows(text)
    assert sorted(rows) == [0, 1, 2, 5, 10]  # the distances below T = 12
    for k, (value,) in rows.items():
        assert value == pytest.approx(gradflow.long_range_fraction(matrix, k), rel=1e-3, abs=1e-300)


@pytest.mark.slow
def test_the_commands_write_pngs_with_matplotlib(tmp_path):
    pytest.importorskip("matplotlib")
    for name, command in (("j", gradflow.jacobians_command), ("c", gradflow.clipping_command),
                          ("m", gradflow.contribution_matrix_command)):
        out = tmp_path / f"{name}.png"
        assert f"plot: {out}" in command(("rnn",), out=str(out), **SMALL)
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_an_exact_zero_is_drawn_on_the_floor_of_the_log_axis():
    figure_module = pytest.importorskip("matplotlib.figure")
    axes = figure_module.Figure().subplots()
    gradflow.plots.draw_lines(axes, {"a": np.array([0.0, 1e-3, 1.0]), "b": np.array([2.0, 3.0, 0.0])}, "", "")
    markers = [line for line in axes.lines if line.get_marker() == "v"]
    assert [list(line.get_xdata()) for line in markers] == [[0], [2]]
    assert all(list(line.get_ydata()) == [1e-4] for line in markers)  # a decade below the smallest positive


@pytest.mark.parametrize("argv, picture", [
    ([], "gradflow.png"),
    (["--param", "weight_ih"], "gradflow_weight_ih.png"),
    (["--jacobians"], "jacobians.png"),
    (["--clip", "--nonlinearity", "relu", "--init", "identity", "--scale", "1.1"], "clipping.png"),
    (["--clip", "value", "--threshold", "0.1"], "clipping.png"),
    (["--contributions"], "contributions.png"),
    (["--contributions", "--param", "bias_hh"], "contributions_bias_hh.png"),
])
def test_each_mode_of_the_cli_has_its_own_picture(argv, picture, no_matplotlib, capsys):
    assert main(["gradflow", "--seq-len", "8", "--hidden", "3", "--input-size", "2", *argv]) == 0
    assert f"plot: {picture} not written: matplotlib is not installed" in capsys.readouterr().out


def test_the_cli_prints_numbers_without_matplotlib(no_matplotlib, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["gradflow", "--jacobians", "--cells", "gru", "--seq-len", "5", "--hidden", "2",
                 "--dtype", "float32", "--init", "orthogonal", "--scale", "0.9"]) == 0
    text = capsys.readouterr().out
    assert "matplotlib is not installed" in text and "float32" in text and sorted(table_rows(text)) == [0, 1, 2, 3, 4]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv, message", [
    (["--threshold", "2"], "--threshold goes with --clip"),
    (["--jacobians", "--param", "weight_hh"], "--param goes alone or with --contributions"),
    (["--jacobians", "--batch", "2"], "batch must be 1"),
    (["--jacobians", "--clip"], "not allowed with"),
    (["--clip", "l1"], "invalid choice"),
    (["--cells", "rnn", "--forget-bias", "1"], "forget_bias"),
    (["--scale", "2"], "scale"),
])
def test_bad_options_are_one_line_and_status_2(argv, message, capsys):
    try:
        status = main(["gradflow", *argv])
    except SystemExit as exit:  # argparse's own usage errors
        status = exit.code
    assert status == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1
