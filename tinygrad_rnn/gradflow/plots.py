"""The pictures of the ``gradflow`` commands (matplotlib, the optional extra ``plot``).

Each function writes one PNG (100 dpi) and returns a line for the command's text: ``plot: <path>``,
or why nothing was written (no matplotlib, or ``out`` None). matplotlib is imported inside
``_figure`` only, and through ``matplotlib.figure`` (no pyplot, so no GUI backend).

Log scales and exact zeros: a value that is exactly 0 (step 0's share of ∂L/∂W_hh when h_{-1} = 0,
a dead relu unit's singular value) has no place on a log axis, so it is drawn as a ▼ marker on a
dotted "floor" line one decade below the smallest positive value shown, labelled "exactly 0".
In the heat maps an exact 0 is a white cell; the long-range fractions, signed, use a symlog axis.
"""
import numpy as np

__all__ = ["line_plot", "draw_lines", "jacobian_plot", "clipping_plot", "contribution_plot"]

DPI = 100


def line_plot(columns, out, title, ylabel):
    """One log-scale line per (T,) column of ``columns`` ({name: values}) over t (``draw_lines``)."""
    figure = _figure(out, (7.5, 4.5))
    if isinstance(figure, str):
        return figure
    draw_lines(figure.subplots(), columns, title, ylabel)
    return _save(figure, out)


def draw_lines(axes, columns, title, ylabel):
    """On matplotlib ``axes``: one log-scale line per (T,) column over t; exact zeros as ▼ on the floor."""
    floor = _floor(columns.values())
    for name, values in columns.items():
        _floored_line(axes, values, floor, label=name, linewidth=1.6)
    _finish(axes, title, "time step t", ylabel, floor, columns.values())


def jacobian_plot(found, out, title):
    """Per cell ({name: Jacobians}): every singular value of ∂s_{T-1}/∂s_t over t (thin), the measured
    norm (the largest, bold), the product bound ∏_{k>t} ‖J_k‖₂ (dashed) and ‖J_t‖₂ (dotted)."""
    figure = _figure(out, (4.2 * len(found), 4.2))
    if isinstance(figure, str):
        return figure
    panels = np.atleast_1d(figure.subplots(1, len(found), sharey=True))
    everything = [r.through_time_singular_values.ravel() for r in found.values()]
    everything += [r.bound for r in found.values()] + [r.step_norms for r in found.values()]
    floor = _floor(everything)
    for axes, (name, result) in zip(panels, found.items()):
        values = result.through_time_singular_values
        for i in range(values.shape[1]):
            _floored_line(axes, values[:, i], floor, color="0.7", linewidth=0.6, antialiased=False,
                          label="singular values of ∂s_{T-1}/∂s_t" if i == 0 else None)
        _floored_line(axes, result.measured, floor, color="C0", linewidth=2.0, label="measured ‖∂s_{T-1}/∂s_t‖₂")
        _floored_line(axes, result.bound, floor, color="C3", linestyle="--", linewidth=1.6,
                      label="bound ∏_{k>t} ‖J_k‖₂")
        _floored_line(axes, result.step_norms, floor, color="C2", linestyle=":", linewidth=1.4, label="‖J_t‖₂")
        _finish(axes, f"{name} (S = {values.shape[1]})", "time step t", "", floor, everything)
    panels[0].set_ylabel("2-norm / singular value")
    figure.suptitle(title)
    return _save(figure, out)


def clipping_plot(norms, compared, out, title):
    """Per cell: ‖∂L/∂h_t‖ over t (left); each entry of the clipped gradient against the unclipped
    one, both divided by their norms (right): on the diagonal where the direction is kept."""
    figure = _figure(out, (10.0, 4.0 * len(norms)))
    if isinstance(figure, str):
        return figure
    rows = np.atleast_2d(figure.subplots(len(norms), 2))
    for (left, right), (name, values) in zip(rows, norms.items()):
        draw_lines(left, {name: values}, f"{name}: gradient reaching step t", r"$\|\partial L / \partial h_t\|$")
        result = compared[name]
        unclipped = _unit(result.gradient)
        for index, (method, clipped) in enumerate(result.clipped.items()):
            right.plot(unclipped, _unit(clipped), linestyle="none", marker="o.x"[index % 3], markersize=3,
                       color=f"C{index + 1}", label=f"{method} clipping: cos = {result.cosine[method]:.4f}")
        limit = np.max(np.abs(unclipped), initial=0.0) * 1.05 or 1.0
        right.plot([-limit, limit], [-limit, limit], color="0.5", linewidth=0.8, label="same direction")
        right.set_title(f"{name}: clipped at {result.threshold:g}, ‖g‖ = {result.norm:.3g}")
        right.set_xlabel("entry of g / ‖g‖ (unclipped)")
        right.set_ylabel("entry of g' / ‖g'‖ (clipped)")
        right.grid(True, alpha=0.35)
        right.legend(fontsize=8)
    figure.suptitle(title)
    return _save(figure, out)


def contribution_plot(found, distances, fractions, out, title):
    """Per cell ({name: ContributionMatrix}): a heat map of log10 ‖G[t, k]‖ (loss step t up, use step
    k across; white: exactly 0), then one panel of the long-range fractions over the distance K."""
    figure = _figure(out, (3.9 * (len(found) + 1), 4.0))
    if isinstance(figure, str):
        return figure
    panels = np.atleast_1d(figure.subplots(1, len(found) + 1))
    logs = {name: _log10_or_nan(matrix.norms) for name, matrix in found.items()}
    shown = np.concatenate([v[np.isfinite(v)] for v in logs.values()] + [np.zeros(0)])
    high = shown.max() if shown.size else 0.0
    low = max(shown.min(), high - 30) if shown.size else -1.0
    for axes, (name, matrix) in zip(panels, found.items()):
        image = axes.imshow(logs[name], origin="lower", cmap="viridis", vmin=low, vmax=high, interpolation="nearest")
        axes.set_title(f"{name}: log10 ‖∂L_t/∂W via step k‖", fontsize=9)
        axes.set_xlabel("use step k")
        axes.set_ylabel("loss step t")
    figure.colorbar(image, ax=panels[:-1].tolist(), shrink=0.85)
    axes = panels[-1]
    for name, values in fractions.items():
        axes.plot(distances, values, marker="o", label=name)
    axes.set_yscale("symlog", linthresh=1e-8)
    axes.set_title("fraction of the gradient from t - k >= K", fontsize=9)
    axes.set_xlabel("K (steps)")
    axes.grid(True, alpha=0.35)
    axes.legend(fontsize=8)
    figure.suptitle(title + "\n(white: exactly 0; k > t by causality, k = 0 as h_{-1} = 0)", fontsize=10)
    return _save(figure, out)


# ===================================================================== shared
def _figure(out, size):
    """A matplotlib Figure, or the line to report when none can be written."""
    if out is None:
        return "plot: not written (no output path)"
    try:
        from matplotlib.figure import Figure  # the optional extra; no pyplot, so no GUI backend
    except ImportError:
        return f"plot: {out} not written: matplotlib is not installed (pip install 'tinygrad_rnn[plot]')"
    return Figure(figsize=size, layout="constrained")


def _save(figure, out):
    figure.savefig(out, dpi=DPI)
    return f"plot: {out}"


def _floor(arrays):
    """One decade below the smallest positive finite value in ``arrays`` (1e-1 if there is none)."""
    positives = [a[np.isfinite(a) & (a > 0)] for a in (np.asarray(v, dtype=np.float64) for v in arrays)]
    smallest = min((p.min() for p in positives if p.size), default=1.0)
    return 10.0 ** (np.floor(np.log10(smallest)) - 1)


def _floored_line(axes, values, floor, label=None, **style):
    """``values`` over t on a log axis: positive ones as a line, exact zeros as ▼ at ``floor``."""
    values = np.asarray(values, dtype=np.float64)
    steps = np.arange(len(values))
    line = axes.semilogy(steps, np.where(np.isfinite(values) & (values > 0), values, np.nan), label=label, **style)[0]
    zeros = values == 0
    if zeros.any():
        axes.plot(steps[zeros], np.full(zeros.sum(), floor), linestyle="none", marker="v", markersize=4,
                  color=line.get_color())


def _finish(axes, title, xlabel, ylabel, floor, arrays):
    """Title, labels, grid, legend; the floor line when any of ``arrays`` has an exact zero."""
    if any(np.any(np.asarray(a) == 0) for a in arrays):
        axes.axhline(floor, color="0.4", linestyle=":", linewidth=0.9, label="exactly 0 (▼ on this floor)")
    axes.set_title(title, fontsize=10)
    axes.set_xlabel(xlabel)
    if ylabel:
        axes.set_ylabel(ylabel)
    axes.grid(True, which="major", alpha=0.35)
    axes.legend(fontsize=8)


def _unit(arrays):
    """The arrays of a {name: array} as one float64 vector divided by its norm (zeros stay zeros)."""
    flat = np.concatenate([a.ravel() for a in arrays.values()]).astype(np.float64)
    size = np.linalg.norm(flat)
    return flat / size if size > 0 else flat


def _log10_or_nan(values):
    """log10 of each entry, NaN (a white cell) where it is exactly 0."""
    with np.errstate(divide="ignore"):
        return np.where(values > 0, np.log10(np.where(values > 0, values, 1.0)), np.nan)
