"""Time every command the README and the examples promise a time for, as a user runs it.

    python benchmarks/bench_promised_times.py [--loaded] [--skip-main-job] [--only NAME ...]

Each command runs once in a fresh Python process, from a temporary folder (so nothing lands in the
checkout), with this checkout's package first on the path, timed from start to exit:

    tinygrad-rnn check        (README: "about a second")
    tinygrad-rnn sentiment    (README: "0.1 s an epoch"; its per-epoch times are shown too)
    examples/*.py             (each promises its time in its docstring's "Run:" line, shown beside)
    tinygrad-rnn train        (the README's main job, 1500 steps; README: its measured time)

--loaded runs the main job once more while another process keeps one core busy
(``python -c "while True: pass"``, killed at the end), as the README reports it both ways.
The 1-minute load average is printed with every time: a number taken beside other work is high.
"cpu seconds" is the CPU time the process used (user + system, all its threads): for work on one
thread it is what the wall time would be on a quiet machine.
"""
import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import format_table, load_report  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
HEADERS = ("command", "promised", "seconds", "cpu seconds", "load avg at start", "note")


def promised_in(example):
    """The time an example's docstring promises on its "Run:" line (the text in the last parentheses)."""
    for line in example.read_text(encoding="utf-8").splitlines():
        if line.startswith("Run:"):
            found = re.findall(r"\(([^()]*)\)\s*$", line)
            return found[-1] if found else "?"
    return "?"


def commands(folder):
    """(name, argv after the interpreter, promise) for every timed command."""
    listed = [("tinygrad-rnn check", ["-m", "tinygrad_rnn", "check"], "about a second"),
              ("tinygrad-rnn sentiment", ["-m", "tinygrad_rnn", "sentiment"], "0.1 s an epoch")]
    listed += [(f"examples/{path.name}", [str(path)], promised_in(path))
               for path in sorted((REPO / "examples").glob("*.py"))]
    listed.append(("tinygrad-rnn train (the main job)",
                   ["-m", "tinygrad_rnn", "train", "--force", "--checkpoint", os.path.join(folder, "char_lm.npz")],
                   "README: measured figure"))
    return listed


def child_cpu_seconds():
    """User + system CPU seconds of the finished child processes so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(argv, folder):
    """(wall seconds, CPU seconds, stdout, error note) of one run of ``python argv`` from ``folder``."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    cpu, started = child_cpu_seconds(), time.perf_counter()
    done = subprocess.run([sys.executable, *argv], cwd=folder, env=env, capture_output=True, text=True)
    seconds, cpu = time.perf_counter() - started, child_cpu_seconds() - cpu
    error = "" if done.returncode == 0 else f"exit {done.returncode}: {done.stderr.strip().splitlines()[-1:]}"
    return seconds, cpu, done.stdout, error


def note_for(name, stdout):
    """What a command's own output adds: the sentiment epochs' times, the main job's threads and result."""
    if name == "tinygrad-rnn sentiment":
        return "epochs " + " ".join(re.findall(r"^epoch \d+:.*\(([\d.]+ s)\)$", stdout, re.MULTILINE))
    if name.startswith("tinygrad-rnn train"):
        done = [line for line in stdout.splitlines() if line.startswith("done:")]
        changes = [line.split("(")[0].strip() for line in stdout.splitlines() if line.startswith("BLAS threads: now")]
        return "; ".join(filter(None, [" ".join(changes), done[-1][:60] if done else ""]))
    return ""


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--loaded", action="store_true", help="also run the main job beside a busy core")
    parser.add_argument("--skip-main-job", action="store_true", help="leave out the main job (minutes)")
    parser.add_argument("--only", nargs="+", help="only the commands whose name contains one of these")
    args = parser.parse_args(argv)
    print(load_report("before"))
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name, command, promise in commands(folder):
            main_job = name.startswith("tinygrad-rnn train")
            if (main_job and args.skip_main_job) or (args.only and not any(part in name for part in args.only)):
                continue
            for condition in ("quiet", "loaded") if main_job and args.loaded else ("quiet",):
                busy = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if condition == "loaded" else None
                try:
                    load = os.getloadavg()[0]
                    seconds, cpu, stdout, error = run(command, folder)
                finally:
                    if busy is not None:
                        busy.kill()
                        busy.wait()  # before the next run: the busy process's CPU time is not counted in it
                label = f"{name}, one core busy" if busy is not None else name
                rows.append((label, promise, f"{seconds:.1f}", f"{cpu:.1f}", f"{load:.2f}",
                             error or note_for(name, stdout)))
                print(f"  {label}: {seconds:.1f} s (load average {load:.2f} at start)", flush=True)
    print(load_report("after"))
    print(format_table(HEADERS, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
