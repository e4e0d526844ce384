"""Timing, memory and table helpers shared by the benchmark scripts."""

import os
import statistics
import time
import tracemalloc


def median_time(fn, repeats=5, warmup=1, min_repeat_seconds=0.05):
    """Median wall time of one call of ``fn()`` in seconds (time.perf_counter).

    ``warmup`` calls are made first and not timed. Each of the ``repeats`` measurements times
    enough back-to-back calls to last at least ``min_repeat_seconds`` (one call when a call is
    longer than that, many for tiny sizes, so the clock's resolution and the loop do not count)
    and records the time per call; the median of the measurements is returned.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}")
    for _ in range(warmup):
        fn()
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    calls = max(1, int(min_repeat_seconds / first)) if first > 0 else 1000
    per_call = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        per_call.append((time.perf_counter() - start) / calls)
    return statistics.median(per_call)


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
