"""The ``feeder`` command: run | serve | refresh | status | check | site check | store copy | worker.

The only module that imports click and rich, sets up logging and turns
FeederError into an exit code (the wall clock is read here and in service.py,
never in a stage). Errors are one line on stderr; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from feeder import __version__, status
from feeder.archive import by_archive_folder
from feeder.cli_common import config_option, configure_logging
from feeder.cli_queue import database_status, queued_refresh, worker_command
from feeder.cli_store import store_group
from feeder.config import Config, load_config
from feeder.control import connect
from feeder.errors import FeederError
from feeder.models import Problem, Progress
from feeder.pipeline import check_seeds
from feeder.refreshes import ping_lines, refresh_once
from feeder.service import Service, announce, serve_only
from feeder.sitecheck import check_site_page, report_lines
from feeder.websub import PingOutcome

EXIT_INTERNAL = 1
EXIT_INPUT_PROBLEMS = 6
PROGRESS_THRESHOLD = 200
REFRESH_TIMEOUT = 600.0


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
    """Republish news sites, scraped articles and feeds as Atom, RSS and JSON feeds."""
    ctx.obj = {"debug": debug}


@main.command("run")
@config_option
@click.pass_context
def run_command(ctx: click.Context, config_path: Path) -> None:
    """Run the service: poll on schedule, serve the output folder, take manual refreshes."""
    configure_logging(ctx.obj["debug"])
    Service(load_config(config_path), config_path=config_path).run()


@main.command("serve")
@config_option
@click.pass_context
def serve_command(ctx: click.Context, config_path: Path) -> None:
    """Only serve the output folder over HTTP (another process refreshes it)."""
    configure_logging(ctx.obj["debug"])
    serve_only(load_config(config_path))


@main.command("refresh")
@config_option
@click.option("--source", "sources", multiple=True, metavar="NAME", help="Poll only this source (repeatable).")
def refresh_command(config_path: Path, sources: tuple[str, ...]) -> None:
    """Poll sources now and publish; asks the running daemon to do it when there is one."""
    config = load_config(config_path)
    unknown = sorted(set(sources) - {s.name for s in config.sources})
    if unknown:
        raise click.BadParameter(f"unknown source(s): {', '.join(unknown)}", param_hint="--source")
    daemon = connect(config)
    if daemon is not None:
        report = daemon.refresh(sources, timeout=REFRESH_TIMEOUT)
        click.echo("refreshed by the running daemon")
        _print_report(report)
    elif (queued := queued_refresh(config, sources, REFRESH_TIMEOUT)) is not None:
        report = queued
        click.echo("polled by the workers (each feeder run publishes what they found)")
        _print_report(report)
    else:
        with _progress_bar() as progress:
            chosen = frozenset(sources) if sources else None
            done = refresh_once(config, datetime.now(UTC), chosen, progress=progress)
        report = done.to_dict()
        _print_report(report)
        _print_pings(asyncio.run(announce(config, done.topics)))
    if any(s["failure"] for s in report["sources"]):
        sys.exit(EXIT_INPUT_PROBLEMS)


@main.command("status")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print status.json as it is.")
def status_command(config_path: Path, as_json: bool) -> None:
    """What the last poll of each source did, and when the next one is due."""
    config = load_config(config_path)
    daemon = connect(config)
    current = daemon.status() if daemon is not None else database_status(config) or status.load(config.state_dir)
    if as_json:
        click.echo(json.dumps(current, ensure_ascii=False, indent=2))
        return
    for line in status.describe(current):
        click.echo(line)


@main.command("check")
@config_option
@click.option("--strict", is_flag=True, help=f"Exit {EXIT_INPUT_PROBLEMS} when any seed has a problem.")
def check_command(config_path: Path, strict: bool) -> None:
    """Validate the config and parse every seed, writing nothing."""
    config = load_config(config_path)
    click.echo(f"{config_path}: config is valid")
    problems = failed = 0
    for source_name, counts in _check(config).items():
        click.echo(
            f"{source_name}: {counts['files']} files, {counts['articles']} articles, "
            f"{counts['distinct']} distinct URLs, {counts['problems']} problems"
        )
        problems += counts["problems"]
        failed += counts["failed"]
    if failed or (strict and problems):
        sys.exit(EXIT_INPUT_PROBLEMS)


main.add_command(store_group)
main.add_command(worker_command)


@main.group("site")
def site_group() -> None:
    """Site rules files: see what they find on a page."""


@site_group.command("check")
@config_option
@click.argument("site")
@click.argument("page")
@click.option("--url", help="The page's URL, when PAGE is a file (relative links resolve against it).")
def site_check_command(config_path: Path, site: str, page: str, url: str | None) -> None:
    """What the rules of SITE extract from PAGE (a URL or a saved file); exits 6 when title or body is missing."""
    config = load_config(config_path)
    check = check_site_page(config, site, page, datetime.now(UTC), url)
    for line in report_lines(check, config.site(site), page):
        click.echo(line)
    if check.missing:
        sys.exit(EXIT_INPUT_PROBLEMS)


def _check(config: Config) -> dict[str, Counter[str]]:
    counts: dict[str, Counter[str]] = {s.name: Counter() for s in config.sources}
    urls: dict[str, set[str]] = {s.name: set() for s in config.sources}
    for source, seed, result in check_seeds(config, datetime.now(UTC)):
        tally = counts[source.name]
        tally["files"] += seed is not None
        tally["failed"] += seed is None
        if isinstance(result, Problem):
            tally["problems"] += 1
            click.echo(f"  {result.locator}: {result.reason}")
        else:
            tally["articles"] += 1
            urls[source.name].add(result.url)
            tally["distinct"] = len(urls[source.name])
    return counts


def _print_report(report: dict[str, Any]) -> None:
    """Print a refresh report in its JSON-ready form (RefreshReport.to_dict)."""
    for s in report["sources"]:
        if s["failure"]:
            click.echo(f"feeder: {s['source']}: {s['failure']}", err=True)
            for problem in s["problems"]:
                click.echo(f"feeder: {problem['locator']}: {problem['reason']}", err=True)
            continue
        click.echo(
            f"{s['source']}: {s['new']} new, {s['updated']} updated, {s['unchanged']} unchanged, "
            f"{s['skipped']} skipped, {len(s['problems'])} errors"
        )
        for problem in s["problems"]:
            click.echo(f"feeder: {problem['locator']}: {problem['reason']}", err=True)
        if s.get("degraded"):
            click.echo(f"feeder: {s['source']}: degraded: {s['degraded']}", err=True)
        if s.get("waiting"):
            click.echo(f"{s['source']}: poll skipped, asked to wait: {s['waiting']}")
    written, archives = by_archive_folder([Path(path) for path in report["written"]])
    for path in written:
        click.echo(f"wrote {_shown(path)}")
    for folder, count in archives.items():
        click.echo(f"wrote {count} archive files in {_shown(folder)}")
    for path in report["unchanged_files"]:
        click.echo(f"unchanged {_shown(Path(path))}")


def _print_pings(outcomes: list[PingOutcome]) -> None:
    """One line per hub: how many of its pings went through (the daemon logs its own)."""
    for ok, line in ping_lines(outcomes):
        click.echo(line if ok else f"feeder: {line}", err=not ok)


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
            bar.update(tasks[source], completed=done, total=total)

        yield update
