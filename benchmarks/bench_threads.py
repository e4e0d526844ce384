"""Time the main job, quiet and with a core kept busy, at fixed BLAS thread counts and with the policy.

    python benchmarks/bench_threads.py [--steps 100] [--rounds 3] [--conditions quiet loaded]

A run is the README's first command as a user meets it, cut to --steps steps:
``python -m tinygrad_rnn train --steps S --force --checkpoint <temporary> --threads X``, timed from
start to exit (so it includes starting Python, reading the built-in corpus, the validation pass and
the sample at the last step, about 2 s together). X is 1, 2 (both fixed) or auto (the policy of
tinygrad_rnn/threads.py, which this script exists to check).

Conditions: "quiet" runs on the machine as it is; "loaded" first starts one process that keeps a core
busy (``python -c "while True: pass"``, killed at the end, also on Ctrl-C), as another user's job
would. In each condition the three settings run in --rounds rounds, each round once each in an order
rotated from round to round, so load that drifts during the run falls on all settings alike.

The table: the median seconds of each (condition, setting) and every run's; the 1-minute load
average when each run started; "x quiet, 1 thread" (median / the quiet 1-thread median: the
issue's goal is at most 1.15 for the loaded policy run); and, within a condition, "x fixed 2"
(median over rounds of the run's time / the 2-thread run's time of the same round). The policy's
count changes are counted from the "BLAS threads: now" lines the runs print.

Needs threadpoolctl (``pip install -e ".[threads]"``): without it --threads changes nothing.
"""
import argparse
import collections
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import format_table, load_report  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SETTINGS = ("2", "1", "auto")
HEADERS = ("condition", "threads", "median s", "runs s", "load avg at start", "x quiet, 1 thread", "x fixed 2",
           "policy changes")


def run_main_job(steps, threads, folder):
    """Seconds one run of the main job takes, and how many times the policy changed the count."""
    command = [sys.executable, "-m", "tinygrad_rnn", "train", "--steps", str(steps), "--force",
               "--checkpoint", os.path.join(folder, "char_lm.npz"), "--threads", threads]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    started = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed with status {done.returncode}:\n{done.stderr}")
    return seconds, done.stdout.count("BLAS threads: now")


def run_condition(steps, rounds, folder):
    """{setting: [(seconds, load average at start, policy changes) per round]}, rounds rotated."""
    runs = collections.defaultdict(list)
    order = collections.deque(SETTINGS)
    for _ in range(rounds):
        for threads in order:
            load = os.getloadavg()[0]
            seconds, changes = run_main_job(steps, threads, folder)
            runs[threads].append((seconds, load, changes))
            print(f"  threads {threads}: {seconds:.1f} s (load average {load:.2f} at start)", flush=True)
        order.rotate(-1)
    return runs


def busy_core():
    """A process that keeps one core busy until it is killed."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def table(results):
    """The rows of HEADERS from {condition: run_condition's result}."""
    quiet_one = statistics.median(s for s, _, _ in results["quiet"]["1"]) if "quiet" in results else None
    rows = []
    for condition, runs in results.items():
        fixed_two = [seconds for seconds, _, _ in runs["2"]]
        for threads in SETTINGS:
            times = [seconds for seconds, _, _ in runs[threads]]
            median = statistics.median(times)
            paired = statistics.median(mine / two for mine, two in zip(times, fixed_two))
            rows.append((condition, threads, f"{median:.1f}", " ".join(f"{s:.1f}" for s in times),
                         " ".join(f"{load:.2f}" for _, load, _ in runs[threads]),
                         f"{median / quiet_one:.2f}" if quiet_one else "-", f"{paired:.2f}",
                         " ".join(str(changes) for _, _, changes in runs[threads]) if threads == "auto" else "-"))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=100, help="training steps per run (default 100)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per condition (default 3)")
    parser.add_argument("--conditions", nargs="+", choices=("quiet", "loaded"), default=["quiet", "loaded"])
    args = parser.parse_args(argv)
    if importlib.util.find_spec("threadpoolctl") is None:
        sys.exit("bench_threads.py needs threadpoolctl (pip install -e \".[threads]\"): without it --threads "
                 "changes nothing")
    print(f"the main job, {args.steps} steps a run, {args.rounds} rounds; {os.cpu_count()} CPUs")
    print(load_report("before"))
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for condition in args.conditions:
            print(f"{condition}:", flush=True)
            busy = busy_core() if condition == "loaded" else None
            try:
                if busy is not None:
                    time.sleep(1.0)  # let the busy process settle on its core
                results[condition] = run_condition(args.steps, args.rounds, folder)
            finally:
                if busy is not None:
                    busy.kill()
                    busy.wait()
    print(load_report("after"))
    print(format_table(HEADERS, table(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
