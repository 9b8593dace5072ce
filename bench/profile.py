"""Where a full refresh spends its time: py-spy over `feeder refresh` of 10 000 new seeds, workers included.

Run with `make profile` (or `python -m bench.profile`). py-spy samples the
command and every process it starts; each sample is put in the stage its
innermost recognisable frame belongs to, and the table shows each stage's share
of the CPU samples of the main process and of the workers.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.corpus import write_corpus
from bench.pipeline import ROOT, SMALL, write_config

RATE = 250  # samples per second and process

# (stage, markers): a sample belongs to the first stage (in this order) that one of its frames names.
STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("start-up (imports, config)", ("importlib", "feeder/config.py")),
    ("rendering (feedgen)", ("feedgen", "feeder/render", "feeder/formats.py")),
    ("gzip + writing files", ("feeder/publish.py",)),
    ("SQLite", ("feeder/store/",)),
    ("sanitizing (nh3)", ("nh3",)),
    ("URLs (w3lib, urllib)", ("w3lib", "urllib/parse.py")),
    ("hashing", ("hashlib",)),
    ("HTML parse + serialize (lxml)", ("lxml", "libxml2")),
    ("parsing seeds (feeder, Python)", ("feeder/parse/",)),
    ("normalizing (feeder, Python)", ("feeder/normalize.py", "feeder/text.py", "feeder/models.py")),
    ("passing work to workers (pickle, pipes)", ("pickle", "multiprocessing/connection.py", "queues.py")),
    ("listing + reading files", ("feeder/sources/reading.py", "read_seed")),
)
WAITING = ("acquire", "wait", "select", "poll", "epoll", "futex", "sleep")
"""A sample whose innermost frame waits is not CPU time."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--files", type=int, default=SMALL)
    args = parser.parse_args()
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    with tempfile.TemporaryDirectory(prefix="feeder-profile-") as tmp:
        work = Path(tmp)
        write_corpus(work / "seeds", args.files)
        config = write_config(work / "seeds", work / "state")
        raw = work / "profile.txt"
        command = [sys.executable, "-m", "feeder", "refresh", "--config", str(config)]
        spy = [py_spy, "record", "--subprocesses", "--native", "--rate", str(RATE), "--format", "raw"]
        subprocess.run([*spy, "--output", str(raw), "--", *command], check=True, cwd=ROOT, capture_output=True)
        print_stages(tally(raw.read_text(encoding="utf-8")), args.files)


def tally(raw: str) -> dict[str, collections.Counter[str]]:
    """Samples per stage, for the main process and for the workers."""
    roles: dict[str, collections.Counter[str]] = {"main": collections.Counter(), "workers": collections.Counter()}
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        role = "workers" if any("_process_worker" in f for f in frames) else "main"
        if role == "main" and "forkserver" in frames[0]:
            continue  # the forkserver itself: idle but for forking
        if not any(word in frames[-1] for word in WAITING):
            roles[role][stage_of(frames)] += int(count)
    return roles


def stage_of(frames: list[str]) -> str:
    for stage, markers in STAGES:
        if any(marker in frame for frame in frames for marker in markers):
            return stage
    return "other"


def print_stages(roles: dict[str, collections.Counter[str]], files: int) -> None:
    totals = {role: sum(counter.values()) for role, counter in roles.items()}
    print(f"py-spy, {RATE} samples/s per process, `feeder refresh` of {files} new seeds")
    print(f"{'stage':<42} {'main':>14} {'workers':>14}")
    for stage in [name for name, _ in STAGES] + ["other"]:
        cells = [
            f"{counter[stage] / RATE:6.2f} s {100 * counter[stage] / max(1, totals[role]):3.0f}%"
            for role, counter in roles.items()
        ]
        print(f"{stage:<42} {cells[0]:>14} {cells[1]:>14}")
    print(f"{'all CPU samples':<42} {totals['main'] / RATE:6.2f} s {'':>4} {totals['workers'] / RATE:6.2f} s")


if __name__ == "__main__":
    main()
