"""The ``feeder`` command: refresh | check.

The only module that imports click and rich, reads the wall clock for the
pipeline, and turns FeederError into an exit code. Errors are one line on
stderr; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from feeder import __version__
from feeder.config import DEFAULT_CONFIG, Config, load_config
from feeder.errors import FeederError
from feeder.models import Problem, RefreshReport
from feeder.pipeline import Progress, check_seeds, refresh, state_database
from feeder.store import Store

EXIT_INTERNAL = 1
EXIT_INPUT_PROBLEMS = 6
PROGRESS_THRESHOLD = 200

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=DEFAULT_CONFIG,
    show_default=True,
    help="The configuration file.",
)


class FeederGroup(click.Group):
    """Turns FeederError into one line on stderr and its exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FeederError as e:
            _fail(ctx, e, str(e), e.exit_code)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as e:  # noqa: BLE001 - a bug still ends in one line and an exit code
            _fail(ctx, e, f"internal error: {type(e).__name__}: {e}", EXIT_INTERNAL)


def _fail(ctx: click.Context, error: Exception, message: str, code: int) -> None:
    if ctx.obj and ctx.obj.get("debug"):
        raise error
    for line in message.splitlines() or [""]:
        click.echo(f"feeder: {line}", err=True)
    if code == EXIT_INTERNAL:
        click.echo("feeder: run with --debug for the traceback", err=True)
    ctx.exit(code)


@click.group(cls=FeederGroup)
@click.option("--debug", is_flag=True, help="Show tracebacks of errors.")
@click.version_option(__version__, prog_name="feeder")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Republish scraped RFI 中文 articles as Atom, RSS and JSON feeds."""
    ctx.obj = {"debug": debug}


@main.command("refresh")
@config_option
def refresh_command(config_path: Path) -> None:
    """Poll every source once, publish the feeds, print what changed."""
    config = load_config(config_path)
    with Store.open(state_database(config)) as store, _progress_bar() as progress:
        report = refresh(config, store, datetime.now(UTC), progress)
    _print_report(report, config)
    if report.failed:
        sys.exit(EXIT_INPUT_PROBLEMS)


@main.command("check")
@config_option
@click.option("--strict", is_flag=True, help=f"Exit {EXIT_INPUT_PROBLEMS} when any seed has a problem.")
def check_command(config_path: Path, strict: bool) -> None:
    """Validate the config and parse every seed, writing nothing."""
    config = load_config(config_path)
    click.echo(f"{config_path}: config is valid")
    problems = 0
    for source_name, counts in _check(config).items():
        click.echo(
            f"{source_name}: {counts['files']} files, {counts['articles']} articles, "
            f"{counts['distinct']} distinct URLs, {counts['problems']} problems"
        )
        problems += counts["problems"]
    if strict and problems:
        sys.exit(EXIT_INPUT_PROBLEMS)


def _check(config: Config) -> dict[str, Counter[str]]:
    counts: dict[str, Counter[str]] = {s.name: Counter() for s in config.sources}
    urls: dict[str, set[str]] = {s.name: set() for s in config.sources}
    for source, seed, result in check_seeds(config, datetime.now(UTC)):
        tally = counts[source.name]
        tally["files"] += seed is not None
        if isinstance(result, Problem):
            tally["problems"] += 1
            click.echo(f"  {result.locator}: {result.reason}")
        else:
            tally["articles"] += 1
            urls[source.name].add(result.url)
            tally["distinct"] = len(urls[source.name])
    return counts


def _print_report(report: RefreshReport, config: Config) -> None:
    for s in report.sources:
        if s.failure:
            click.echo(f"feeder: {s.source}: {s.failure}", err=True)
            continue
        click.echo(
            f"{s.source}: {s.new} new, {s.updated} updated, {s.unchanged} unchanged, "
            f"{s.skipped} skipped, {len(s.problems)} errors"
        )
        for problem in s.problems:
            click.echo(f"feeder: {problem.locator}: {problem.reason}", err=True)
    for path in report.written:
        click.echo(f"wrote {_shown(path)}")
    for path in report.unchanged_files:
        click.echo(f"unchanged {_shown(path)}")


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


@contextmanager
def _progress_bar() -> Iterator[Progress | None]:
    """A progress bar for large seed folders when stdout is a terminal; nothing otherwise."""
    if not sys.stdout.isatty():
        yield None
        return
    from rich.progress import Progress as RichProgress  # noqa: PLC0415 - only a terminal pays its import

    with RichProgress(transient=True) as bar:
        tasks: dict[str, Any] = {}

        def update(source: str, done: int, total: int) -> None:
            if total < PROGRESS_THRESHOLD:
                return
            if source not in tasks:
                tasks[source] = bar.add_task(f"reading {source}", total=total)
            bar.update(tasks[source], completed=done)

        yield update
