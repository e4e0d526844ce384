"""Timing, memory and table helpers shared by the benchmark scripts."""

import collections
import os
import statistics
import time
import tracemalloc


def _calls_per_measurement(fn, warmup, min_repeat_seconds):
    """Makes ``warmup`` untimed calls of ``fn()``, then times one more and returns how many
    back-to-back calls one measurement needs to last at least ``min_repeat_seconds`` (1 when a
    call is longer than that, many for tiny sizes, so the clock's resolution and the loop do not
    count)."""
    for _ in range(warmup):
        fn()
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    return max(1, int(min_repeat_seconds / first)) if first > 0 else 1000


def _seconds_per_call(fn, calls):
    """One measurement: the wall time of ``calls`` back-to-back calls of ``fn()``, over ``calls``."""
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def interleaved_times(steps, repeats, warmup=1, min_repeat_seconds=0.05):
    """Per-call wall times of several functions, measured in interleaved rounds.

    ``steps`` is {name: fn}. Each fn gets ``warmup`` untimed calls and its own number of
    back-to-back calls per measurement (``_calls_per_measurement``). Then ``repeats`` rounds
    run; a round takes one measurement of every fn, in an order rotated by one place each round
    so no fn always runs first (or always right after the same other one).

    Returns {name: [seconds per call in round 0, round 1, ..., round repeats-1]}, in the order of
    ``steps``. Why rounds: on a shared machine the load drifts within a run; timing one fn's
    repeats and then the next's lets a slow minute land on one fn only, while within a round all
    fns see nearly the same load, so per-round ratios (see ``median_paired_ratio``) cancel it.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}")
    for name, fn in steps.items():
        if not callable(fn):
            raise TypeError(f"interleaved_times: steps[{name!r}] is {type(fn).__name__}, not callable")
    calls = {name: _calls_per_measurement(fn, warmup, min_repeat_seconds) for name, fn in steps.items()}
    times = {name: [] for name in steps}
    order = collections.deque(steps)
    for _ in range(repeats):
        for name in order:
            times[name].append(_seconds_per_call(steps[name], calls[name]))
        order.rotate(-1)
    return times


def median_paired_ratio(times, reference_times):
    """Median over rounds of times[i] / reference_times[i]: two lists from the same
    ``interleaved_times`` run, so each ratio compares measurements taken under the same load."""
    if len(times) != len(reference_times) or not times:
        raise ValueError(f"median_paired_ratio needs two equally long, non-empty lists of round times, "
                         f"got lengths {len(times)} and {len(reference_times)}")
    return statistics.median(ours / reference for ours, reference in zip(times, reference_times))


def peak_memory(fn):
    """Peak bytes allocated while ``fn()`` runs, measured by tracemalloc.

    NumPy reports its array buffers to tracemalloc, so this counts the arrays ``fn`` creates,
    freed or not, on top of the memory live before the call.
    """
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        if not was_tracing:
            tracemalloc.stop()
    return peak - before


def load_report(when):
    """One line on how busy the machine is: timings taken beside other work are slow and noisy."""
    load = os.getloadavg()[0]
    cpus = len(os.sched_getaffinity(0))
    text = f"load average {when}: {load:.2f} on {cpus} CPUs"
    if load > 0.5:
        text += " (other processes are running: timings may be inflated and noisy)"
    return text


def format_table(headers, rows):
    """Aligned plain-text table: a header line, a rule, then one line per row (cells any type)."""
    cells = [[str(cell) for cell in row] for row in rows]
    widths = [max([len(str(header))] + [len(row[column]) for row in cells if column < len(row)])
              for column, header in enumerate(headers)]

    def line(values):
        return "  ".join(value.ljust(width) for value, width in zip(values, widths)).rstrip()

    return "\n".join([line([str(h) for h in headers]), line(["-" * w for w in widths])]
                     + [line(row) for row in cells])
