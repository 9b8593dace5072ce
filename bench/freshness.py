"""Freshness benchmark: seconds from a seed file written to the published feed's bytes changed, with nothing but
the running daemon's folder watcher to notice it.

A real `feeder run` (bench/daemon.py starts it) serves a folder of 200 synthetic seed files with a one-day
interval, so only the watcher can bring a change in. Each round writes one file and times until
public/rfi-cn.atom holds other bytes: new files and files rewritten in place (a newer version of their
article) alternate. The figure is the median of the rounds, against a target of 2 s; every sample is printed.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from bench.common import Figure, Samples, free_port, print_table
from bench.corpus import write_corpus
from bench.daemon import (
    PAST,
    REFRESH_TIMEOUT,
    age_files,
    newer_version,
    running_daemon,
    scrape_times,
    wait_ready,
    write_config,
)

SEED_FILES = 200
ROUNDS = 20
TARGET_SECONDS = 2.0
GIVE_UP = 30.0
PAUSE = 1.5  # seconds between rounds: the daemon looks again at a file written in the last seconds


def figures(rounds: int = ROUNDS) -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="feeder-bench-freshness-") as tmp:
        folder = Path(tmp)
        seeds = folder / "seeds"
        write_corpus(seeds, SEED_FILES)
        files = sorted(seeds.glob("*.txt"))
        age_files(files, PAST)
        config, log = write_config(folder, free_port()), folder / "daemon.log"
        feed = folder / "public" / "rfi-cn.atom"
        with running_daemon(config, log) as daemon:
            wait_ready(daemon, config, log).refresh((), REFRESH_TIMEOUT)  # the start's own refresh is done after it
            samples = measure(seeds, files, feed, rounds)
    samples.show("freshness", "s")
    values = [v for name in samples.values for v in samples.values[name]]
    median = statistics.median(values)
    return [
        Figure(
            f"freshness: a seed file written to the feed changed, median of {len(values)}",
            median,
            "s",
            f"<= {TARGET_SECONDS:g} s",
            median <= TARGET_SECONDS,
            note=f"fastest {min(values):.2f} s, slowest {max(values):.2f} s",
        )
    ]


def measure(seeds: Path, files: list[Path], feed: Path, rounds: int) -> Samples:
    originals = {path: path.read_bytes() for path in files}
    base_ms = scrape_times(originals) + 86_400_000
    samples = Samples()
    for number in range(1, rounds + 1):
        time.sleep(PAUSE)
        before = feed.read_bytes()
        if number % 2:
            source = files[number]
            kind, path, data = "new file", seeds / f"new_{number:04d}.txt", new_article(originals[source], number)
        else:
            path = files[number]
            kind, data = "rewritten in place", newer_version(originals[path], number, base_ms)
        started = time.perf_counter()
        path.write_bytes(data)
        while feed.read_bytes() == before:
            if time.perf_counter() - started > GIVE_UP:
                raise SystemExit(f"round {number}: the feed did not change within {GIVE_UP:g} s")
            time.sleep(0.005)
        samples.add(kind, time.perf_counter() - started)
    return samples


def new_article(template: bytes, number: int) -> bytes:
    """Another article: the template's text under a URL of its own."""
    header, _, rest = template.partition(b"](")
    _, _, body = rest.partition(b")")
    return header + f"](https://www.rfi.fr/cn/%E4%B8%AD%E5%9B%BD/20240101-fresh-{number})".encode() + body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    args = parser.parse_args()
    print_table(figures(args.rounds))


if __name__ == "__main__":
    main()
