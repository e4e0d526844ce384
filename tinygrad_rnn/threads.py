"""How many threads NumPy's BLAS uses while training, chosen from the measured step times.

Why: a step of the main job (an LSTM of hidden size 256 on 32 streams of 64 characters) is a few
dozen matrix products of a few hundred rows each, large enough for OpenBLAS to split every product
between its threads and small enough that the threads meet at the end of each one. On a quiet
2-core machine two threads make a step about 1.4x faster than one; when another process keeps a
core busy, the second thread waits for that core at every product and a step takes about 2x as long
as with one thread (10x and more when several processes compete). Neither count suits every
machine, and the load changes during a run, so ``BlasThreads("auto")`` lets the steps decide
between 1 and n, the count BLAS started with:

    warm-up: the first ``warmup`` steps (which record and compile the recurrent step) run at one
             thread, the count that is never far off, and are not timed.
    probe:   steps in pairs, the current count c and the other one o, as (c, o), (o, c), (c, o), ...
             so that a load drifting during the probe hits both alike; r_k = (step time with o /
             step time with c) in pair k. Once most of the ``pairs`` pairs agree on which count is
             faster (2 of 3: a probe usually takes 4 steps), or one pair finds a count ``decisive``
             (3) times slower than the other (a heavily loaded machine: its steps are costly), o is
             kept if the median of the r_k is below 1, and the median step time at the kept count
             becomes the reference.
    settle:  steps at the kept count, until the next probe: after P steps, where
             P = pairs * (s - 1) / budget, clamped to [recheck, max_recheck], and s >= 1 is how much
             slower the other count was, so that probing costs about ``budget`` (5%) of the time
             however slow the other count is; or sooner when the median of the last ``pairs`` steps
             is ``drift`` times slower than the reference at n threads (load came) or ``drift`` times
             faster at one thread (load went), once (s - 1) / budget settled steps have passed (the
             cost of one step at the other count, within the budget).

A probe's steps are ordinary training steps run at the other count: nothing is computed twice.
The count changes no number with OpenBLAS, NumPy's BLAS: it splits a product's output between
threads, so each entry is summed in the same order whatever the count (checked by
tests/test_threads_policy.py); a BLAS that sums in an order depending on the count would make runs
differ by rounding, and a fixed count (``BlasThreads(1)``) then keeps a run bit-for-bit repeatable.

The threads are set through threadpoolctl, an optional dependency (``pip install -e ".[threads]"``).
Without it nothing is changed and ``describe()`` says so; starting the process with
``OPENBLAS_NUM_THREADS=1`` is then the way to one thread on a busy machine.
"""
import collections
import contextlib
import math
import statistics
import time

from ._checks import check_int, check_real, is_int

__all__ = ["BlasThreads", "BlasPool", "find_blas_pool", "parse_threads"]


def parse_threads(value):
    """``"auto"`` or a positive int (also given as a string of digits, as on a command line); ValueError otherwise."""
    if isinstance(value, str) and value == "auto":
        return value
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if not is_int(value) or value < 1:
        raise ValueError(f"threads must be 'auto' or a positive integer, got {value!r}")
    return int(value)


class BlasPool:
    """The BLAS libraries loaded in the process (NumPy's OpenBLAS, and any other a library brought
    in), through threadpoolctl: ``threads`` (the largest count they started with), ``set(count)``
    (for all of them) and ``restore()`` (back to the counts they had before the first ``set``)."""

    def __init__(self, controller):
        self.controller = controller
        self.threads = max(library["num_threads"] for library in controller.info())
        self.first_limit = None

    def set(self, count):
        limit = self.controller.limit(limits=count)
        if self.first_limit is None:
            self.first_limit = limit

    def restore(self):
        if self.first_limit is not None:
            self.first_limit.restore_original_limits()
            self.first_limit = None


def find_blas_pool():
    """(BlasPool, None) for the BLAS NumPy has loaded, or (None, why not) when threadpoolctl is not
    installed or finds no BLAS."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None, "threadpoolctl is not installed"
    controller = ThreadpoolController().select(user_api="blas")
    if not controller.info():
        return None, "threadpoolctl finds no BLAS library loaded"
    return BlasPool(controller), None


class BlasThreads:
    """The BLAS thread count of each training step: fixed, or ``"auto"`` (see the module docstring).

    ``threads``: ``"auto"`` or a positive int. ``pool``: an object with ``threads``, ``set(count)``
    and ``restore()`` (default: ``find_blas_pool()``; a pool can be injected, as tests do with a fake
    one and a fake ``clock``, a function returning seconds). ``log``: called with one line each
    time "auto" changes the count. The other arguments tune "auto" (module docstring).

    Use::

        blas = BlasThreads("auto", log=print)
        print(blas.describe())
        try:
            for batch in batches:
                with blas.step():
                    ...  # forward, backward, optimizer step: the work that is timed
        finally:
            blas.close()  # BLAS gets back the count it started with

    ``count`` is the count of the settled steps (None when the pool is missing), ``period`` the
    settled steps between two probes.
    """

    def __init__(self, threads="auto", *, pool=None, clock=time.perf_counter, log=None, pairs=3, warmup=2,
                 recheck=50, max_recheck=400, drift=1.3, budget=0.05, decisive=3.0):
        self.threads = parse_threads(threads)
        for name, value, least in (("pairs", pairs, 1), ("warmup", warmup, 0), ("recheck", recheck, 1),
                                   ("max_recheck", max_recheck, recheck)):
            check_int("BlasThreads", name, value, least)
        check_real("BlasThreads", "drift", drift, low=1.0)
        check_real("BlasThreads", "decisive", decisive, low=1.0)
        check_real("BlasThreads", "budget", budget, high=1.0, high_open=True, low=0.001)
        self.missing = None
        if pool is None:
            pool, self.missing = find_blas_pool()
        self.pool, self.clock, self.log = pool, clock, log or (lambda line: None)
        self.pairs, self.recheck, self.max_recheck, self.drift, self.budget = pairs, recheck, max_recheck, drift, budget
        self.decisive = decisive
        self.count = None if pool is None else pool.threads if threads == "auto" else threads
        self.choosing = pool is not None and threads == "auto" and pool.threads > 1
        self.plan = collections.deque()  # the counts of the probe's remaining steps
        self.probe = []  # (count, seconds) of the probe's steps so far
        self.recent = collections.deque(maxlen=pairs)  # the last settled step times
        self.reference = None  # the median step time of the kept count, from the last probe
        self.drift_gap = 0  # settled steps before a drift may start a probe
        self.period, self.settled_steps, self.untimed = recheck, 0, warmup
        if self.choosing:
            self._start_probe()

    def describe(self):
        """One line saying what this object does to the BLAS threads."""
        if self.pool is None:
            return (f"BLAS threads: left as BLAS started them ({self.missing}; install it to let training choose "
                    f"them, or start with OPENBLAS_NUM_THREADS=1 on a busy machine)")
        if self.choosing:
            return (f"BLAS threads: 1 or {self.pool.threads}, whichever gives faster steps, measured as training "
                    f"goes")
        if self.threads == "auto":
            return "BLAS threads: 1 (BLAS started with one, so there is nothing to choose)"
        return f"BLAS threads: {self.threads} (fixed)"

    @contextlib.contextmanager
    def step(self):
        """Run the block (one training step) at this step's count and, when choosing, time it. A
        block that raises is not timed."""
        if self.pool is None:
            yield
            return
        if not self.choosing:
            self.pool.set(self.count)
            yield
            return
        count = 1 if self.untimed else self.plan[0] if self.plan else self.count
        self.pool.set(count)
        started = self.clock()
        yield
        self._record(count, self.clock() - started)

    def _record(self, count, seconds):
        """Take in a step's time: a warm-up step's (dropped), a probe step's, or a settled step's."""
        if self.untimed:
            self.untimed -= 1
        elif self.plan:
            self.plan.popleft()
            self.probe.append((count, seconds))
            ratios = self._pair_ratios()
            majority = max(sum(r < 1 for r in ratios), sum(r >= 1 for r in ratios)) > self.pairs // 2
            if not self.plan or majority or any(max(r, 1 / r) >= self.decisive for r in ratios):
                self._decide(ratios)
        else:
            self.recent.append(seconds)
            self.settled_steps += 1
            if self.settled_steps >= self.period or self._drifted():
                self._start_probe()

    def _pair_ratios(self):
        """(step time with the other count / with the current one) for each finished pair of the probe."""
        finished = [dict(self.probe[k:k + 2]) for k in range(0, len(self.probe) - 1, 2)]
        return [pair[self._other()] / pair[self.count] for pair in finished]

    def _drifted(self):
        """Whether the last ``pairs`` settled steps' median moved from the reference by the factor
        ``drift`` in the direction that may favour the other count (slower at n threads: load came;
        faster at one: load went), after enough settled steps to pay for a slow probe step."""
        if len(self.recent) < self.pairs or self.settled_steps < self.drift_gap:
            return False
        ratio = statistics.median(self.recent) / self.reference
        return ratio > self.drift if self.count > 1 else ratio < 1 / self.drift

    def _other(self):
        return 1 if self.count > 1 else self.pool.threads

    def _start_probe(self):
        for pair in range(self.pairs):
            self.plan.extend((self.count, self._other()) if pair % 2 == 0 else (self._other(), self.count))
        self.probe = []

    def _decide(self, ratios):
        """Keep the count with the faster steps in the probe (the median of the pairs' ratios)."""
        ratio, other = statistics.median(ratios), self._other()
        medians = {count: statistics.median(seconds for c, seconds in self.probe if c == count)
                   for count in (self.count, other)}
        if ratio < 1:
            self.log(f"BLAS threads: now {other} (median step {1e3 * medians[other]:.0f} ms with {other}, "
                     f"{1e3 * medians[self.count]:.0f} ms with {self.count})")
            self.count, ratio = other, 1 / ratio
        self.period = min(self.max_recheck, max(self.recheck, math.ceil(self.pairs * (ratio - 1) / self.budget)))
        self.drift_gap = min(self.period, math.ceil((ratio - 1) / self.budget))
        self.reference = medians[self.count]
        self.plan.clear()
        self.settled_steps = 0
        self.recent.clear()

    def close(self):
        """Give BLAS back the count it started with."""
        if self.pool is not None:
            self.pool.restore()
