"""The BLAS thread policy (tinygrad_rnn.threads.BlasThreads), driven by a fake pool and a fake clock.

The simulated machine: a step takes T1 seconds with one thread whatever the load; with two threads
it takes T2_QUIET on a quiet machine and T2_BUSY when another process keeps a core busy (the
numbers measured on the project's 2-core machine, rounded). Nothing here reads the real clock.
"""
import sys

import numpy as np
import pytest

from tinygrad_rnn import cli
from tinygrad_rnn.threads import BlasThreads, parse_threads
from tinygrad_rnn.train import train_char_lm

T1, T2_QUIET, T2_BUSY = 0.174, 0.123, 0.354
TEXT = "the cat sat on the mat. the dog sat on the log.\n" * 12
SMALL = dict(seq_len=5, batch_size=3, hidden_size=6, embedding_dim=4, val_fraction=0.2, progress=False)


class FakePool:
    """A BLAS pool that started with ``threads`` threads and remembers every count it was set to."""

    def __init__(self, threads=2):
        self.threads, self.current, self.counts_set, self.restored = threads, threads, [], False

    def set(self, count):
        self.current = count
        self.counts_set.append(count)

    def restore(self):
        self.current, self.restored = self.threads, True


class Machine:
    """A fake clock whose steps take the time the simulated machine gives the pool's current count:
    T1 with one thread, else ``two_threads`` (T2_QUIET, or T2_BUSY with a core kept busy)."""

    def __init__(self, pool):
        self.pool, self.now, self.two_threads = pool, 0.0, T2_QUIET
        self.counts = []  # the count each step ran at

    def clock(self):
        return self.now

    def run(self, policy, steps):
        for _ in range(steps):
            with policy.step():
                self.counts.append(self.pool.current)
                self.now += T1 if self.pool.current == 1 else self.two_threads


def simulate(threads=2, **options):
    pool = FakePool(threads)
    machine = Machine(pool)
    lines = []
    policy = BlasThreads("auto", pool=pool, clock=machine.clock, log=lines.append, **options)
    return policy, machine, lines


def test_a_quiet_machine_keeps_both_threads_and_a_busy_one_moves_to_one_and_back():
    policy, machine, lines = simulate(warmup=2, pairs=3, recheck=50, max_recheck=400, drift=1.3)
    machine.run(policy, 40)
    assert policy.count == 2 and lines == [] and policy.period == 50
    # warm-up at one thread, then a probe that stops once two pairs agree, then settled at two threads
    assert machine.counts[:6] == [1, 1, 2, 1, 1, 2] and set(machine.counts[6:40]) == {2}

    machine.two_threads = T2_BUSY  # two slow steps make the last 3's median 2.9x the reference: a probe at once
    machine.run(policy, 2 + 4)
    assert policy.count == 1 and machine.counts[-6:] == [2, 2, 2, 1, 1, 2]
    assert lines == ["BLAS threads: now 1 (median step 174 ms with 1, 354 ms with 2)"]
    machine.run(policy, 200)
    assert policy.count == 1 and machine.counts[-200:].count(2) <= 2 * 3  # a probe every 63 steps or so

    machine.two_threads = T2_QUIET  # one thread's steps take as long as before: only the next probe sees it
    machine.run(policy, 2 * (policy.period + 4))  # the probe in progress, if any, then the next one
    assert policy.count == 2 and lines[-1] == "BLAS threads: now 2 (median step 123 ms with 2, 174 ms with 1)"


def test_a_fluctuating_load_starts_no_probe_that_cannot_pay_for_itself():
    """At one thread, beside a heavy load that makes two threads 16x slower, steps that get slower
    never start a probe (more load only favours one thread further), and faster ones only after
    (16 - 1) / budget = 300 settled steps; the periodic probe comes after 400."""
    policy, machine, lines = simulate(pairs=3, budget=0.05, recheck=50, max_recheck=400, drift=1.3)
    machine.two_threads = 16 * T1
    machine.run(policy, 2 + 2)  # warm-up, then one decisive pair: (2, 1)
    assert policy.count == 1 and policy.period == 400 and machine.counts.count(2) == 1
    for step in range(310):
        with policy.step():
            machine.counts.append(machine.pool.current)
            one_thread = T1 * (2.0 if step % 10 < 5 else 0.6)  # 2x slower, then 1.7x faster, and again
            machine.now += one_thread if machine.pool.current == 1 else machine.two_threads
        if step == 295:
            assert machine.counts.count(2) == 1  # 296 settled steps: no probe yet
    assert machine.counts.count(2) == 2  # a run of faster steps after ~300: one more probe, decided at once
    assert policy.count == 1 and lines == ["BLAS threads: now 1 (median step 174 ms with 1, 2784 ms with 2)"]


@pytest.mark.parametrize("two_threads, kept", [(T2_QUIET, 2), (T2_BUSY, 1)])
def test_a_drift_that_only_favours_the_kept_count_starts_no_probe(two_threads, kept):
    """Kept two threads and the steps get faster (load went), or kept one and they get slower
    (load came): the other count can only have lost, so nothing happens until the periodic probe."""
    policy, machine, _ = simulate(pairs=3, budget=0.05, recheck=50, max_recheck=400, drift=1.3)
    machine.two_threads = two_threads
    machine.run(policy, 2 + 4)
    assert policy.count == kept and policy.period in (50, 63)
    for _ in range(policy.period - 1):
        with policy.step():
            machine.counts.append(machine.pool.current)
            machine.now += 0.5 * two_threads if kept == 2 else 2 * T1
    assert set(machine.counts[6:]) == {kept}


@pytest.mark.parametrize("two_threads, fastest", [(T2_QUIET, T2_QUIET), (T2_BUSY, T1)])
@pytest.mark.parametrize("steps", [100, 1500])
def test_a_run_costs_little_more_than_at_the_best_fixed_count(two_threads, fastest, steps):
    """The issue's goal in the simulation: busy, at most 1.15x one thread's time; quiet, 1.05x two threads'."""
    policy, machine, _ = simulate()
    machine.two_threads = two_threads
    machine.run(policy, steps)
    assert machine.now <= (1.05 if fastest == T2_QUIET else 1.15) * steps * fastest
    assert policy.count == (1 if two_threads == T2_BUSY else 2)


@pytest.mark.parametrize("two_threads, period, probe", [(T2_QUIET, 50, [2, 1, 1, 2]), (T2_BUSY, 63, [2, 1, 1, 2]),
                                                         (16 * T1, 400, [2, 1])])
def test_the_slower_the_other_count_the_shorter_and_rarer_the_probes(two_threads, period, probe):
    """P = pairs * (s - 1) / budget in [recheck, max_recheck]: s = 1.41 (quiet) gives 25 -> 50;
    s = 2.03 (busy) gives 63; s = 16 gives 900 -> 400. A pair with one count 3x slower (decisive)
    ends the probe at once."""
    policy, machine, _ = simulate(pairs=3, budget=0.05, recheck=50, max_recheck=400, decisive=3.0)
    machine.two_threads = two_threads
    machine.run(policy, 2 + 4 + 10)
    assert policy.period == period and machine.counts[2:2 + len(probe)] == probe
    assert set(machine.counts[2 + len(probe):]) == {1 if two_threads > T1 else 2}


def test_a_step_that_raises_is_not_timed():
    policy, machine, _ = simulate(warmup=0)
    with pytest.raises(KeyboardInterrupt):
        with policy.step():
            machine.now += 100.0
            raise KeyboardInterrupt
    machine.run(policy, 5)
    assert machine.counts == [2, 1, 1, 2, 2]  # the probe and a settled step: the raising step was not counted
    assert policy.count == 2 and policy.reference == pytest.approx(T2_QUIET)


def test_a_fixed_count_is_set_for_every_step_and_given_back_at_the_end():
    pool = FakePool(2)
    policy = BlasThreads(1, pool=pool, clock=lambda: pytest.fail("a fixed count times nothing"))
    assert policy.describe() == "BLAS threads: 1 (fixed)"
    for _ in range(3):
        with policy.step():
            assert pool.current == 1
    policy.close()
    assert pool.counts_set == [1, 1, 1] and pool.restored and pool.current == 2


def test_a_blas_started_with_one_thread_leaves_nothing_to_choose():
    pool = FakePool(1)
    policy = BlasThreads("auto", pool=pool, clock=lambda: pytest.fail("nothing to time"))
    with policy.step():
        pass
    assert "nothing to choose" in policy.describe() and pool.counts_set == [1]


def test_without_threadpoolctl_nothing_changes_training_runs_and_the_log_says_so_once(monkeypatch):
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)  # import threadpoolctl raises ImportError
    policy = BlasThreads("auto")
    assert policy.pool is None and policy.count is None
    with policy.step():
        pass
    policy.close()
    lines = []
    result = train_char_lm(TEXT, steps=3, log=lines.append, threads=2, **SMALL)
    assert result.step == 3
    said = [line for line in lines if line.startswith("BLAS threads")]
    assert said == ["BLAS threads: left as BLAS started them (threadpoolctl is not installed; install it to let "
                    "training choose them, or start with OPENBLAS_NUM_THREADS=1 on a busy machine)"]


@pytest.mark.parametrize("value", [0, -1, "x", "", True, 1.5, None, "2.0"])
def test_a_bad_thread_count_is_refused_naming_it(value):
    with pytest.raises(ValueError, match=f"threads must be 'auto' or a positive integer, got {value!r}"):
        parse_threads(value)
    with pytest.raises(ValueError, match="threads must be 'auto'"):
        train_char_lm(TEXT, steps=1, log=lambda line: None, threads=value, **SMALL)


def test_the_command_line_takes_threads_and_refuses_a_bad_count(tmp_path, capsys):
    path = str(tmp_path / "lm.npz")
    assert parse_threads("3") == 3 and cli.build_parser().parse_args(["train"]).threads == "auto"
    assert cli.build_parser().parse_args(["train", "--threads", "1"]).threads == 1
    with pytest.raises(SystemExit) as exit_:
        cli.main(["train", "--threads", "zero", "--checkpoint", path])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err == ("tinygrad-rnn train: error: argument --threads: threads must be 'auto' or a positive integer, "
                   "got 'zero'\n")


def test_with_threadpoolctl_the_count_changes_no_number_and_is_given_back():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    before = threadpoolctl.threadpool_info()
    if max(library["num_threads"] for library in before if library["user_api"] == "blas") < 2:
        pytest.skip("BLAS runs one thread here: no other count to compare with")
    text = "".join(chr(32 + (i * 7919) % 90) for i in range(4000))  # 90 distinct characters
    weights = {}
    for threads in (1, 2):  # products of (256, 256) by (256, 1024) and the like: large enough to be split
        result = train_char_lm(text, steps=2, seq_len=8, batch_size=32, hidden_size=256, log=lambda line: None,
                               progress=False, threads=threads)
        weights[threads] = {name: p.data for name, p in result.model.named_parameters()}
        assert threadpoolctl.threadpool_info() == before
    for name, value in weights[1].items():
        np.testing.assert_array_equal(value, weights[2][name], err_msg=name)
