"""`python -m bench` (what `make bench` runs, from the project folder): every benchmark, then one table.

Runs pipeline, render, variants, daemon, freshness, serve, live and scaleout in that order (or only those named
with --only), each printing its samples as it goes, collects their figures and ends with one table of every
figure next to its floor. Exits 1 when a figure misses its target, 2 when a tool a chosen benchmark needs is missing.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench.common import Figure, print_table

BENCHMARKS = ("pipeline", "render", "variants", "daemon", "freshness", "serve", "live", "scaleout")
PG_BIN = os.environ.get("FEEDER_PG_BIN", "/usr/lib/postgresql/15/bin")  # where tests/postgres.py looks
# What each benchmark runs besides Python, and the Debian package that has it.
TOOLS = {
    "pipeline": {"/usr/bin/time": "time"},
    "variants": {"/usr/bin/time": "time"},
    "serve": {"nginx": "nginx-light", "wrk": "wrk"},
    "scaleout": {f"{PG_BIN}/{name}": "postgresql-15" for name in ("initdb", "pg_ctl", "postgres")},
}
MODULES = {"serve": {"aiohttp": "pip install -e '.[bench]'"}}


def missing(chosen: list[str]) -> list[str]:
    """A line per tool or module the chosen benchmarks need and cannot find."""
    lines = []
    for name in chosen:
        for tool, package in TOOLS.get(name, {}).items():
            found = Path(tool).is_file() if tool.startswith("/") else shutil.which(tool)
            if not found:
                lines.append(f"{name} needs {tool}: apt-get install {package}")
        for module, install in MODULES.get(name, {}).items():
            if importlib.util.find_spec(module) is None:
                lines.append(f"{name} needs the Python module {module}: {install}")
    return lines


def pipeline(args: argparse.Namespace) -> list[Figure]:
    """bench/pipeline.py is being written separately: said plainly and skipped while it is not there."""
    try:
        module = importlib.import_module("bench.pipeline")
    except ModuleNotFoundError as e:
        if e.name != "bench.pipeline":
            raise
        print("pipeline: bench/pipeline.py does not exist yet; no pipeline figures in this run", file=sys.stderr)
        return []
    found = module.figures(args.rounds)
    if not isinstance(found, list) or not all(isinstance(f, Figure) for f in found):
        raise TypeError("bench.pipeline.figures(rounds) must return a list of bench.common.Figure")
    return found


def render(args: argparse.Namespace) -> list[Figure]:
    from bench import render  # noqa: PLC0415 - each benchmark's imports are paid only when it runs

    return render.figures(args.rounds)


def variants(args: argparse.Namespace) -> list[Figure]:
    from bench import variants  # noqa: PLC0415

    return variants.figures(args.rounds)


def daemon(args: argparse.Namespace) -> list[Figure]:
    from bench import daemon  # noqa: PLC0415

    return daemon.figures(args.cycles)


def freshness(args: argparse.Namespace) -> list[Figure]:
    from bench import freshness  # noqa: PLC0415

    return freshness.figures()


def serve(args: argparse.Namespace) -> list[Figure]:
    from bench import serve  # noqa: PLC0415

    return serve.figures(args.rounds)


def live(args: argparse.Namespace) -> list[Figure]:
    from bench import live  # noqa: PLC0415

    return live.figures(args.rounds)


def scaleout(args: argparse.Namespace) -> list[Figure]:
    from bench import scaleout  # noqa: PLC0415

    return scaleout.figures(args.rounds)


RUNNERS: dict[str, Callable[[argparse.Namespace], list[Figure]]] = {
    "pipeline": pipeline,
    "render": render,
    "variants": variants,
    "daemon": daemon,
    "freshness": freshness,
    "serve": serve,
    "live": live,
    "scaleout": scaleout,
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=5, help="rounds of figure and floor alternating (default 5)")
    parser.add_argument("--cycles", type=int, default=1000, help="daemon refresh cycles (default 1000)")
    parser.add_argument("--only", action="append", choices=BENCHMARKS, metavar="NAME",
                        help=f"run only this benchmark (repeatable): {', '.join(BENCHMARKS)}")  # fmt: skip
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    chosen = [name for name in BENCHMARKS if not args.only or name in args.only]
    problems = missing(chosen)
    if problems:
        print("\n".join(f"bench: {line}" for line in problems), file=sys.stderr)
        return 2
    figures: list[Figure] = []
    for name in chosen:
        started = time.monotonic()
        print(f"\n== {name}", flush=True)
        found = RUNNERS[name](args)
        if not found and args.only and name in args.only:
            print(f"bench: {name} gave no figures", file=sys.stderr)
            return 1
        figures += found
        print(f"== {name}: {time.monotonic() - started:.0f} s", flush=True)
    print_table(figures)
    return 0 if all(f.met for f in figures) else 1


if __name__ == "__main__":
    sys.exit(main())
