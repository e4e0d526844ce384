"""The ``tinygrad-rnn gradflow`` commands: each measures the seeded demo cells (demo.py), returns its
numbers as text, and writes a picture (plots.py) when matplotlib is installed.

Every command takes ``cells`` (some of "rnn", "lstm", "gru"), then keywords only: ``out`` (the PNG;
None: none) and the demo's settings, passed to ``demo_models``: seq_len, hidden, input_size, batch,
seed, nonlinearity, init_name, scale, forget_bias, dtype (default: T=100, H=32, D=8, N=1, seed
0, tanh, PyTorch's default init, float64).

    gradflow_command              ‖∂L/∂h_t‖ over t, L = Σ h_{T-1}·v (many-to-one)
    contributions_command         ‖step t's share of ∂L/∂param‖ over t, same loss
    jacobians_command             singular values of ∂s_{T-1}/∂s_t, measured norm and product bound
    clipping_command              ‖∂L/∂h_t‖, and norm vs value clipping of ∂L/∂W: cosines
    contribution_matrix_command   the (loss step × use step) matrix for L = Σ_t h_t·v, long-range fractions
"""
import numpy as np

from ..bptt._checks import PARAM_NAMES
from .clipping import compare_clipping
from .contributions import contribution_matrix, long_range_fraction
from .demo import DEMO_DEFAULTS, demo_models, describe_init, describe_setup
from .jacobians import jacobians
from .norms import hidden_grad_norms, weight_grad_contributions
from .plots import clipping_plot, contribution_plot, jacobian_plot, line_plot

__all__ = ["gradflow_command", "contributions_command", "jacobians_command", "clipping_command",
           "contribution_matrix_command", "table", "CONTRIBUTION_DISTANCES"]

CONTRIBUTION_DISTANCES = (0, 1, 2, 5, 10, 20, 50)


def gradflow_command(cells=("rnn", "lstm", "gru"), *, out="gradflow.png", **setup):
    """‖∂L/∂h_t‖ for each cell on the same data, L = ``last_output_loss``: a table of every ~10th step and
    the ratio ‖∂L/∂h_0‖ / ‖∂L/∂h_{T-1}‖; the picture: one log-scale line per cell."""
    xs, models = demo_models(cells, **setup)
    norms = {name: hidden_grad_norms(cell, xs) for name, cell in models.items()}
    last = xs.shape[0] - 1
    lines = [f"‖∂L/∂h_t‖ with L = Σ h_{last}·v (many-to-one): {describe_setup(**setup)}", table(norms)]
    lines.append(f"‖∂L/∂h_0‖ / ‖∂L/∂h_{last}‖:  " +
                 "   ".join(f"{name} {values[0] / values[last]:.3e}" for name, values in norms.items()))
    lines.append(line_plot(norms, out, f"Gradient reaching step t from a loss at step {last}\n"
                           f"H={setup.get('hidden', DEMO_DEFAULTS['hidden'])}, {describe_init(**setup)}, untrained",
                           r"$\|\partial L / \partial h_t\|$"))
    return "\n".join(lines)


def contributions_command(cells=("rnn", "lstm", "gru"), param="weight_hh", *, out="", **setup):
    """‖step t's contribution to ∂L/∂param‖ for each cell (``weight_grad_contributions``), same loss as
    ``gradflow_command``; param one of weight_ih, weight_hh, bias_ih, bias_hh; out "" (the default)
    means ``gradflow_{param}.png``. The full gradient is the sum of these shares. (For weight_hh step 0
    contributes exactly 0 when the initial state is zero: its term is dP_h^T h_{-1}.)"""
    if param not in PARAM_NAMES:
        raise ValueError(f"param must be one of {list(PARAM_NAMES)}, got {param!r}")
    out = f"gradflow_{param}.png" if out == "" else out
    xs, models = demo_models(cells, **setup)
    norms = {name: weight_grad_contributions(cell, xs).norms()[param] for name, cell in models.items()}
    return "\n".join([f"‖step t's contribution to ∂L/∂{param}‖ with L = Σ h_{xs.shape[0] - 1}·v (many-to-one): "
                      f"{describe_setup(**setup)}", table(norms),
                      line_plot(norms, out, f"Each step's share of dL/d{param}\n(the shares sum to the gradient)",
                                f"norm of step t's share of dL/d{param}")])


def jacobians_command(cells=("rnn", "lstm", "gru"), *, out="jacobians.png", **setup):
    """``jacobians`` of each cell on one sequence (batch must be 1): per ~10th step the measured
    ‖∂s_{T-1}/∂s_t‖₂, the bound ∏_{k>t} ‖J_k‖₂ and ‖J_t‖₂; the picture: per cell, every singular
    value of ∂s_{T-1}/∂s_t over t, the measured norm (the largest) and the bound."""
    if setup.get("batch", 1) != 1:
        raise ValueError(f"the Jacobians follow one sequence: batch must be 1, got {setup['batch']}")
    xs, models = demo_models(cells, **setup)
    found = {name: jacobians(cell, xs) for name, cell in models.items()}
    columns = {}
    for name, result in found.items():
        columns.update({f"{name} meas": result.measured, f"{name} bound": result.bound,
                        f"{name} ‖J_t‖": result.step_norms})
    last = xs.shape[0] - 1
    lines = [f"Jacobians through time ∂s_{last}/∂s_t (s = h, or (h, c) for the LSTM): {describe_setup(**setup)}",
             "meas = ‖∂s_{T-1}/∂s_t‖₂, bound = ∏_{k=t+1}^{T-1} ‖J_k‖₂, ‖J_t‖ = ‖∂s_t/∂s_{t-1}‖₂", table(columns)]
    for name, result in found.items():
        lines.append(f"{name}: at t=0 measured {result.measured[0]:.3e}, bound {result.bound[0]:.3e}; "
                     f"‖J_t‖₂ > 1 at {np.sum(result.step_norms > 1)} of {len(result.step_norms)} steps, "
                     f"geometric mean {_geometric_mean(result.step_norms):.3f}")
    lines.append(jacobian_plot(found, out, f"Singular values of ∂s_{last}/∂s_t: {describe_init(**setup)}"))
    return "\n".join(lines)


def clipping_command(cells=("rnn",), *, threshold=1.0, methods=("norm", "value"), out="clipping.png", **setup):
    """Exploding gradients and clipping: ‖∂L/∂h_t‖ (L = ``last_output_loss``), then the gradient of every
    parameter clipped each way at ``threshold`` (``compare_clipping``): its norm before and after,
    the cosine to the unclipped gradient and the fraction of entries changed. The picture: per cell,
    ‖∂L/∂h_t‖ over t, and each gradient entry clipped against unclipped, both divided by their norms."""
    xs, models = demo_models(cells, **setup)
    norms = {name: hidden_grad_norms(cell, xs) for name, cell in models.items()}
    compared = {name: compare_clipping(cell, xs, threshold, methods) for name, cell in models.items()}
    last = xs.shape[0] - 1
    lines = [f"‖∂L/∂h_t‖ with L = Σ h_{last}·v (many-to-one): {describe_setup(**setup)}", table(norms)]
    for name, result in compared.items():
        lines.append(f"{name}: ‖∂L/∂W‖ = {result.norm:.4e} over all parameters; clipping at {threshold:g}:")
        for method in result.clipped:
            lines.append(f"  {method:>5}: ‖g'‖ = {result.clipped_norm[method]:.4e}, cos(g', g) = "
                         f"{result.cosine[method]:.6f}, {result.changed[method]:.1%} of the entries changed")
    lines.append(clipping_plot(norms, compared, out, f"Exploding gradients and clipping: {describe_init(**setup)}"))
    return "\n".join(lines)


def contribution_matrix_command(cells=("rnn", "lstm", "gru"), param="weight_hh", *, out="contributions.png",
                                **setup):
    """``contribution_matrix`` of each cell for L = Σ_t h_t·v (``every_step_loss``): the fraction of
    ∂L/∂param carried by dependencies at least K steps long (``long_range_fraction``) for K in
    ``CONTRIBUTION_DISTANCES``; the picture: per cell a heat map of log10 ‖G[t, k]‖, and the fractions."""
    if param not in PARAM_NAMES:
        raise ValueError(f"param must be one of {list(PARAM_NAMES)}, got {param!r}")
    xs, models = demo_models(cells, **setup)
    found = {name: contribution_matrix(cell, xs, param) for name, cell in models.items()}
    distances = [k for k in CONTRIBUTION_DISTANCES if k < xs.shape[0]]
    fractions = {name: np.array([long_range_fraction(m, k) for k in distances]) for name, m in found.items()}
    lines = [f"(loss step t × use step k) contributions to ∂L/∂{param}, L = Σ_t h_t·v (many-to-many): "
             f"{describe_setup(**setup)}",
             "fraction of ∂L/∂W (its signed projection on the full gradient's direction) carried by t-k >= K:",
             table(fractions, index=distances, index_name="K")]
    for name, matrix in found.items():
        size = np.linalg.norm(matrix.total.astype(np.float64))
        lines.append(f"{name}: ‖∂L/∂{param}‖ = {size:.4e}; the diagonal k = t carries "
                     f"{np.trace(matrix.projection) / matrix.projection.sum():.1%}")
    title = f"Which (loss step, use step) pairs dL/d{param} learns from: {describe_init(**setup)}"
    lines.append(contribution_plot(found, distances, fractions, out, title))
    return "\n".join(lines)


def table(columns, index=None, index_name="t"):
    """The rows of ``index`` (default every ~10th step and the last) of each column, in scientific notation."""
    steps = len(next(iter(columns.values())))
    if index is None:
        index = list(range(0, steps, max(1, steps // 10)))
        if index[-1] != steps - 1:
            index.append(steps - 1)
        positions = index
    else:
        positions = range(len(index))
    width = max(12, 2 + max(len(name) for name in columns))
    lines = [f"{index_name:>5}" + "".join(f"{name:>{width}}" for name in columns)]
    lines += [f"{label:>5}" + "".join(f"{values[row]:>{width}.3e}" for values in columns.values())
              for label, row in zip(index, positions)]
    return "\n".join(lines)


def _geometric_mean(values):
    with np.errstate(divide="ignore"):
        return float(np.exp(np.mean(np.log(values))))
