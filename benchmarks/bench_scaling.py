"""How our layer's training step scales with the sequence length T and the hidden size H.

    python benchmarks/bench_scaling.py [--cell lstm] [--repeats N]

Times one step (as in bench_step.py: forward over the sequence, backward to every parameter and
x, loss = sum(outputs * R)) of tinygrad_rnn.nn and of the NumPy baseline, after the same
gradient check against the baseline, over
    T in 16, 32, 64, 128, 256   at N=8, D=64, H=128
    H in 32, 64, 128, 256, 512  at N=8, T=64, D=64
and prints the time per time step with fitted laws:
    seconds = a + b T           b, the cost of one more time step (a step costs O(1) in T)
    seconds ~ T^k and ~ H^k     k, the log-log slope: 1 in T is linear, near 2 would mean each
                                step costs O(T), i.e. the sequence O(T^2)
As in bench_step.py, the two are timed together at each point in --repeats interleaved rounds:
"median ms" is the median over rounds, "x baseline" the median over rounds of (ours / the
baseline's time in the same round).
"""

import argparse

import numpy as np

from _timing import format_table, load_report
from bench_step import LAYER_NAMES, make_problem, measure_against_baseline

BATCH, INPUT = 8, 64
T_SWEEP = (16, 32, 64, 128, 256)
H_SWEEP = (32, 64, 128, 256, 512)
FIXED_H, FIXED_T = 128, 64
IMPLEMENTATIONS = ("numpy baseline", "tinygrad_rnn.nn")
HEADERS = ("sweep", "T", "H", "implementation", "median ms", "us per time step", "x baseline", "note")


def sweep(cell, axis, values, repeats):
    """Times every implementation at each value of ``axis`` ("T" or "H").

    Returns (rows for the table, {implementation: (values that ran, seconds)}).
    """
    rows, timings = [], {name: ([], []) for name in IMPLEMENTATIONS}
    for value in values:
        T, H = (value, FIXED_H) if axis == "T" else (FIXED_T, value)
        problem = make_problem(cell, BATCH, T, INPUT, H)
        results = measure_against_baseline(problem, IMPLEMENTATIONS, repeats)
        for name, result in results.items():
            seconds = result["seconds"]
            if seconds is not None:
                timings[name][0].append(value)
                timings[name][1].append(seconds)
            rows.append((axis, T, H, name,
                         "-" if seconds is None else f"{seconds * 1e3:.3f}",
                         "-" if seconds is None else f"{seconds / T * 1e6:.1f}",
                         "-" if result["ratio"] is None else f"{result['ratio']:.2f}x",
                         result["note"]))
    return rows, timings


def fitted_laws(axis, timings):
    """One line per implementation: the log-log slope, and for T the linear per-step cost."""
    lines = []
    for name, (values, seconds) in timings.items():
        if len(values) < 2:
            lines.append(f"{axis}: {name}: too few points to fit")
            continue
        exponent = np.polyfit(np.log(values), np.log(seconds), 1)[0]
        text = f"{axis}: {name}: time ~ {axis}^{exponent:.2f}"
        if axis == "T":
            slope, intercept = np.polyfit(values, seconds, 1)
            text += f"; linear fit {intercept * 1e3:.3f} ms + {slope * 1e6:.1f} us per time step"
        lines.append(text)
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cell", choices=list(LAYER_NAMES), default="lstm")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved timing rounds per point")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    print(f"{args.cell}: N={BATCH}, D={INPUT}; T sweep at H={FIXED_H}, H sweep at T={FIXED_T}")
    print(load_report("before"))
    rows, lines = [], []
    for axis, values in (("T", T_SWEEP), ("H", H_SWEEP)):
        axis_rows, timings = sweep(args.cell, axis, values, args.repeats)
        rows += axis_rows
        lines += fitted_laws(axis, timings)
    print(format_table(HEADERS, rows))
    print("\n".join(lines))
    print(load_report("after"))


if __name__ == "__main__":
    main()
