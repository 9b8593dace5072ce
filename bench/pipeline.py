"""Pipeline benchmarks: refreshing synthetic seed folders of 10 000 and 100 000 files, each next to its floor.

- full refresh of 10 000 seeds into an empty state, against reading every file
  and parsing its HTML with lxml: target 3x;
- refresh of 100 000 seeds when nothing changed, against os.scandir + stat of
  the folder: target 3x;
- peak memory of `feeder refresh` over 100 000 new seeds (sum of PSS over the
  process and its workers): target 150 MB, and no more at 100 000 than at
  10 000 beyond the store's page cache.

Every contender runs in a fresh interpreter (`python -m bench.pipeline --child
...`) that times only the work, after its imports; /usr/bin/time -v gives each
whole process's wall time and peak RSS. Contenders alternate for several
rounds; the best sample counts and every sample is printed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench.common import Figure, ProcessRun, Samples, run_process, timed_refresh
from bench.corpus import folder_bytes, write_corpus
from feeder.sources.reading import default_workers

ROOT = Path(__file__).resolve().parent.parent
SMALL, LARGE = 10_000, 100_000
TIME_TARGET = 3.0
MEMORY_TARGET_MB = 150.0
STORE_CACHE_MB = 32.0  # PRAGMA cache_size in feeder/store/connection.py: the store may grow by this much


def figures(rounds: int) -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="feeder-bench-pipeline-") as tmp:
        work = Path(tmp)
        folders = {count: work / f"seeds-{count}" for count in (SMALL, LARGE)}
        for count, folder in folders.items():
            started = time.perf_counter()
            articles = write_corpus(folder, count)
            print(
                f"corpus: {count} files ({articles} distinct articles), {folder_bytes(folder) / 1e6:.0f} MB,"
                f" written in {time.perf_counter() - started:.1f} s",
                flush=True,
            )
        return [
            full_refresh(folders[SMALL], work, rounds),
            *peak_memory(folders, work, max(2, rounds // 2)),
            unchanged_refresh(folders[LARGE], work / f"memory-{LARGE}", rounds),
        ]


def full_refresh(folder: Path, work: Path, rounds: int) -> Figure:
    samples = Samples()
    for n in range(rounds):
        samples.add("floor: read + lxml", child("floor-parse", folder)["seconds"])
        state = work / f"full-{n}"
        samples.add("feeder: refresh into empty state", child("refresh", folder, state)["seconds"])
        shutil.rmtree(state)
        samples.add("library calls alone", child("libraries", folder, state)["seconds"])
        shutil.rmtree(state)
    samples.show(f"full refresh of {SMALL} seeds", "s")
    figure = time_figure(samples, f"full refresh, {SMALL} seeds, empty state", "read + lxml")
    alone, floor = samples.best("library calls alone"), samples.best("floor: read + lxml")
    workers = default_workers()  # the worker processes a refresh reads with: one per core
    note = (
        f"the library calls a refresh cannot do without (read, sha256, lxml parse and serialize, nh3, one SQLite"
        f" insert per file) take {alone:.3f} s in one process: {alone / floor:.1f}x the floor,"
        f" {alone / floor / workers:.1f}x on {workers} cores at best"
    )
    return dataclasses.replace(figure, note=note)


def unchanged_refresh(folder: Path, state: Path, rounds: int) -> Figure:
    samples = Samples()
    for _ in range(rounds):
        samples.add("floor: scandir + stat", child("floor-stat", folder)["seconds"])
        result = child("refresh", folder, state)
        if result["read"]:
            raise SystemExit(f"the unchanged refresh read {result['read']} files")
        samples.add("feeder: refresh, nothing changed", result["seconds"])
    samples.show(f"refresh of {LARGE} unchanged seeds", "s")
    return time_figure(samples, f"refresh, {LARGE} seeds, nothing changed", "scandir + stat")


def time_figure(samples: Samples, name: str, floor_name: str) -> Figure:
    """The best feeder sample against the best sample of ``floor: {floor_name}``."""
    feeder = next(label for label in samples.values if label.startswith("feeder: "))
    best, floor = samples.best(feeder), samples.best(f"floor: {floor_name}")
    target = f"<= {TIME_TARGET:g}x floor ({floor_name})"
    return Figure(name, best, "s", target, best <= TIME_TARGET * floor, floor)


def peak_memory(folders: dict[int, Path], work: Path, rounds: int) -> list[Figure]:
    """`feeder refresh` (the command a user runs) over each folder into an empty state, whole process."""
    runs: dict[int, list[ProcessRun]] = {SMALL: [], LARGE: []}
    for _ in range(rounds):
        for count, folder in folders.items():
            state = work / f"memory-{count}"
            shutil.rmtree(state, ignore_errors=True)
            runs[count].append(feeder_refresh(folder, state))
    for count, samples in runs.items():
        for run in samples:
            print(
                f"  feeder refresh, {count} new seeds: {run.seconds:.2f} s wall, peak PSS (tree)"
                f" {run.peak_pss_mb:.1f} MB, max RSS (largest process) {run.max_rss_mb:.1f} MB",
                flush=True,
            )
    small = min(r.peak_pss_mb for r in runs[SMALL])
    large = min(r.peak_pss_mb for r in runs[LARGE])
    largest_rss = min(r.max_rss_mb for r in runs[LARGE])
    return [
        Figure(
            f"peak memory, full refresh of {LARGE} seeds (PSS, tree)",
            large,
            "MB",
            f"<= {MEMORY_TARGET_MB:g} MB",
            large <= MEMORY_TARGET_MB,
            note=f"largest single process (max RSS, /usr/bin/time -v): {largest_rss:.1f} MB",
        ),
        Figure(
            f"peak memory at {LARGE} vs {SMALL} seeds (PSS, tree)",
            large,
            "MB",
            f"<= {SMALL // 1000}k + {STORE_CACHE_MB:g} MB cache",
            large <= small + STORE_CACHE_MB,
            floor=small,
        ),
    ]


def feeder_refresh(folder: Path, state: Path) -> ProcessRun:
    config = write_config(folder, state)
    run = run_process([sys.executable, "-m", "feeder", "refresh", "--config", str(config)], cwd=ROOT)
    if run.exit_code != 0:
        raise SystemExit(f"feeder refresh failed ({run.exit_code}):\n{run.output[-3000:]}")
    return run


def child(mode: str, folder: Path, state: Path | None = None) -> dict[str, float]:
    """Run one contender in a fresh interpreter; its own timing comes back as JSON on stdout."""
    command = [sys.executable, "-m", "bench.pipeline", "--child", mode, str(folder)]
    run = run_process([*command, str(state)] if state else command, cwd=ROOT)
    if run.exit_code != 0:
        raise SystemExit(f"{mode} failed ({run.exit_code}):\n{run.output[-3000:]}")
    result: dict[str, float] = json.loads(run.output.splitlines()[0])
    print(
        f"    {mode} {folder.name}: {result['seconds']:.3f} s timed, {run.seconds:.2f} s whole process,"
        f" max RSS {run.max_rss_mb:.0f} MB, peak PSS {run.peak_pss_mb:.0f} MB",
        flush=True,
    )
    return result


def write_config(folder: Path, state: Path) -> Path:
    state.mkdir(parents=True, exist_ok=True)
    config = state / "config.yaml"
    config.write_text(
        f"output_dir: {state / 'public'}\n"
        f"state_dir: {state / 'state'}\n"
        "base_url: http://127.0.0.1:8080/\n"
        "allowed_hosts: [www.rfi.fr]\n"
        f"sources:\n  - {{name: seeds, kind: seeds, path: {folder}}}\n"
        "feeds:\n"
        "  - {name: rfi-cn, title: RFI 中文, description: RFI, sources: [seeds], max_entries: 200,"
        " sections: true}\n",
        encoding="utf-8",
    )
    return config


# In the child process ------------------------------------------------------------------------------------------


def floor_parse(folder: Path) -> float:
    import lxml.html  # noqa: PLC0415 - the floor imports only what it uses

    started = time.perf_counter()
    with os.scandir(folder) as entries:
        for entry in entries:
            with open(entry.path, "rb") as f:  # noqa: PTH123 - the cheapest way to read, as the floor should be
                lxml.html.fromstring(f.read())
    return time.perf_counter() - started


def libraries_alone(folder: Path, state: Path) -> float:
    """The library work of a full refresh without any of feeder's own: per file, read and hash the bytes, parse
    the article HTML with lxml and serialize it, sanitize it with nh3 (feeder's allowlist), and insert one row
    keyed by URL into SQLite (feeder's page size, journal and cache settings), in one transaction."""
    import hashlib  # noqa: PLC0415 - only what this contender uses
    import sqlite3  # noqa: PLC0415

    import lxml.etree  # noqa: PLC0415

    from feeder.normalize import sanitize_html  # noqa: PLC0415 - nh3.clean with feeder's options

    state.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(state / "alone.sqlite3", isolation_level=None)
    for pragma in ("page_size = 16384", "journal_mode = WAL", "synchronous = NORMAL", "cache_size = -32000"):
        db.execute(f"PRAGMA {pragma}")
    db.execute("CREATE TABLE entries (url TEXT PRIMARY KEY, sha256 TEXT NOT NULL, content TEXT NOT NULL)")
    parser = lxml.etree.HTMLParser()
    started = time.perf_counter()
    db.execute("BEGIN")
    with os.scandir(folder) as entries:
        for entry in entries:
            with open(entry.path, "rb") as f:  # noqa: PTH123 - as the floor reads
                data = f.read()
            header, _, html = data.decode("utf-8").partition("------")
            root = lxml.etree.fromstring(f"<html><body>{html}</body></html>", parser)
            body = str(lxml.etree.tostring(root[0], method="html", encoding="unicode"))
            url = header[header.index("](") + 2 : header.rindex(")")]
            row = (url, hashlib.sha256(data).hexdigest(), sanitize_html(body, base_url=url))
            db.execute("INSERT OR REPLACE INTO entries VALUES (?, ?, ?)", row)
    db.execute("COMMIT")
    seconds = time.perf_counter() - started
    db.close()
    return seconds


def floor_stat(folder: Path) -> float:
    started = time.perf_counter()
    with os.scandir(folder) as entries:
        for entry in entries:
            entry.stat()
    return time.perf_counter() - started


def refresh_child(folder: Path, state: Path) -> dict[str, float]:
    seconds, counts = timed_refresh(write_config(folder, state))
    return {"seconds": seconds, "read": counts["read"], "poll": counts["poll_ms"] / 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--child", choices=("floor-parse", "floor-stat", "refresh", "libraries"))
    parser.add_argument("paths", nargs="*", type=Path)
    args = parser.parse_args()
    if args.child == "floor-parse":
        print(json.dumps({"seconds": floor_parse(args.paths[0])}))
    elif args.child == "floor-stat":
        print(json.dumps({"seconds": floor_stat(args.paths[0])}))
    elif args.child == "libraries":
        print(json.dumps({"seconds": libraries_alone(args.paths[0], args.paths[1])}))
    elif args.child == "refresh":
        print(json.dumps(refresh_child(args.paths[0], args.paths[1])))
    else:
        from bench.common import print_table  # noqa: PLC0415

        print_table(figures(args.rounds))


if __name__ == "__main__":
    main()
