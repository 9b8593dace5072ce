"""What every benchmark shares: figures, alternating best-of-N runs, whole-process measurements, the table.

A figure is measured next to its floor in the same run: the two alternate for
several rounds, the best sample of each counts, and every sample is printed.
Memory is the sum of PSS over a process and its descendants (read from
/proc/PID/smaps_rollup), sampled while it runs; /usr/bin/time -v gives each
whole-process run's wall time and peak RSS.
"""

from __future__ import annotations

import re
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from urllib.parse import quote

from bench.corpus import sentences
from feeder.models import Entry


@dataclass(frozen=True)
class Figure:
    """One line of the table: a measurement, its floor (if it has one), the target and whether it is met."""

    name: str
    measured: float
    unit: str
    target: str
    met: bool
    floor: float | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        return None if not self.floor else self.measured / self.floor


@dataclass
class Samples:
    """Every sample of every contender, in the order they were taken."""

    values: dict[str, list[float]] = field(default_factory=dict)

    def add(self, name: str, value: float) -> None:
        self.values.setdefault(name, []).append(value)

    def best(self, name: str, *, lowest: bool = True) -> float:
        return min(self.values[name]) if lowest else max(self.values[name])

    def show(self, label: str, unit: str, digits: int = 3) -> None:
        for name, values in self.values.items():
            print(f"  {label}: {name}: " + " ".join(f"{v:.{digits}f}" for v in values) + f" {unit}", flush=True)


def alternate(rounds: int, contenders: dict[str, Callable[[], float]]) -> Samples:
    """Run each contender once per round, in turn, for ``rounds`` rounds."""
    samples = Samples()
    for _ in range(rounds):
        for name, run in contenders.items():
            samples.add(name, run())
    return samples


@dataclass(frozen=True)
class ProcessRun:
    """One whole-process run: wall time and peak RSS from /usr/bin/time -v, peak PSS of its tree sampled."""

    seconds: float
    max_rss_mb: float
    peak_pss_mb: float
    exit_code: int
    output: str


def run_process(command: Sequence[str], *, env: dict[str, str] | None = None, cwd: Path | None = None) -> ProcessRun:
    """Run ``command`` under /usr/bin/time -v, sampling the PSS of its process tree every 20 ms."""
    process = subprocess.Popen(
        ["/usr/bin/time", "-v", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=cwd,
        text=True,
    )
    sampler = PssSampler(process.pid)
    sampler.start()
    stdout, stderr = process.communicate()
    sampler.stop()
    return ProcessRun(
        seconds=_elapsed(stderr),
        max_rss_mb=int(_time_field(stderr, "Maximum resident set size (kbytes)")) / 1024,
        peak_pss_mb=sampler.peak / 1024,
        exit_code=process.returncode,
        output=stdout + stderr,
    )


def _time_field(report: str, name: str) -> str:
    match = re.search(rf"^\s*{re.escape(name)}: (.+)$", report, re.MULTILINE)
    if not match:
        raise RuntimeError(f"/usr/bin/time -v printed no {name!r}:\n{report[-2000:]}")
    return match.group(1).strip()


def _elapsed(report: str) -> float:
    """'Elapsed (wall clock) time (h:mm:ss or m:ss): 0:01.23' in seconds."""
    text = _time_field(report, "Elapsed (wall clock) time (h:mm:ss or m:ss)")
    seconds = 0.0
    for part in text.split(":"):
        seconds = seconds * 60 + float(part)
    return seconds


def tree_pss_kb(pid: int) -> int:
    """PSS of a process and all its descendants, in KB (0 for a process that is gone)."""
    return sum(_pss_kb(p) for p in [pid, *descendants(pid)])


def descendants(pid: int) -> list[int]:
    found: list[int] = []
    pending = [pid]
    while pending:
        parent = pending.pop()
        for task in _listdir(f"/proc/{parent}/task"):
            children = _read(f"/proc/{parent}/task/{task}/children").split()
            found += [int(c) for c in children]
            pending += [int(c) for c in children]
    return found


def _pss_kb(pid: int) -> int:
    match = re.search(r"^Pss:\s+(\d+) kB", _read(f"/proc/{pid}/smaps_rollup"), re.MULTILINE)
    return int(match.group(1)) if match else 0


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _listdir(path: str) -> list[str]:
    try:
        return [p.name for p in Path(path).iterdir()]
    except OSError:
        return []


class PssSampler:
    """Samples the PSS of a process tree in a thread; ``peak`` is the largest sum seen, in KB."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, tree_pss_kb(self.pid))
            time.sleep(self.interval)


def print_table(figures: Sequence[Figure]) -> None:
    """The one table `make bench` ends with."""
    width = max([26, *(len(f.target) for f in figures)])  # the target column fits the longest target
    print()
    print(f"{'figure':<58} {'measured':>12} {'floor':>12} {'ratio':>7}  {'target':<{width}} {'met':<4}")
    for f in figures:
        floor = "" if f.floor is None else f"{_amount(f.floor)} {f.unit}"
        ratio = "" if f.ratio is None else f"{f.ratio:.2f}"
        print(
            f"{f.name:<58} {_amount(f.measured) + ' ' + f.unit:>12} {floor:>12} {ratio:>7}  {f.target:<{width}} "
            f"{'yes' if f.met else 'NO':<4}"
        )
        if f.note:
            print(f"{'':<4}{f.note}")


def _amount(value: float) -> str:
    return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}" if abs(value) < 1000 else f"{value:.0f}"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


ENTRY_SECTIONS = ("中国", "港澳台", "国际", "法国", "经贸")
CONTENT_BYTES = 4096


@cache
def _pool() -> tuple[str, ...]:
    return tuple(sentences())


def synthetic_entries(count: int) -> list[Entry]:
    """``count`` entries shaped like RFI's: Chinese title, lead and about 4 KB of body paragraphs, an image.

    The text is the bundled seeds' sentences picked by index, so the same count always gives the same entries.
    """
    start = datetime(2024, 1, 1, tzinfo=UTC)
    return [_entry(n, start + timedelta(minutes=37 * n)) for n in range(count)]


def _entry(n: int, published: datetime) -> Entry:
    pool = _pool()
    pick = [pool[(n * 7 + k * 13) % len(pool)] for k in range(64)]
    section = ENTRY_SECTIONS[n % len(ENTRY_SECTIONS)]
    return Entry(
        url="https://www.rfi.fr" + quote(f"/cn/{section}/{published:%Y%m%d}-{pick[0][:10]}-{n}"),
        title=pick[0][:24].rstrip("。，"),
        section=section,
        categories=(section,),
        author=None,
        lead=pick[1] + pick[2],
        image=f"https://s.rfi.fr/media/display/{n:032x}/w:1280/p:16x9/{n:08x}.jpg",
        content_html=_paragraphs(pick[3:]),
        published=published,
        updated=published + timedelta(minutes=n % 90),
    )


def _paragraphs(pick: list[str]) -> str:
    """Paragraphs of two or three sentences until the HTML reaches CONTENT_BYTES."""
    parts: list[str] = []
    size = 0
    for k in range(0, len(pick), 3):
        paragraph = "<p>" + "".join(pick[k : k + 2 + k % 2]) + "</p>"
        parts.append(paragraph)
        size += len(paragraph.encode())
        if size >= CONTENT_BYTES:
            break
    return "".join(parts)


def timed_refresh(config_path: Path) -> tuple[float, dict[str, int]]:
    """One in-process refresh of a config, timed alone (its imports are not): seconds, and the first source's
    counts and poll time (poll_ms, the rest being rendering and publishing). Exits when the source failed or had
    a problem file, which would make the figure meaningless."""
    from feeder.config import load_config  # noqa: PLC0415 - imported by the child process that times
    from feeder.pipeline import refresh, state_database  # noqa: PLC0415
    from feeder.store import Store  # noqa: PLC0415

    config = load_config(config_path)
    with Store.open(state_database(config)) as store:
        started = time.perf_counter()
        report = refresh(config, store, datetime.now(UTC))
        seconds = time.perf_counter() - started
    source = report.sources[0]
    if source.failure or source.problems:
        raise SystemExit(f"refresh went wrong: {source.failure or source.problems[:3]}")
    read = source.new + source.updated + source.unchanged
    return seconds, {"new": source.new, "read": read, "poll_ms": round(source.duration * 1000)}
