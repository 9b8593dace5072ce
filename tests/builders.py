"""Builders for test inputs: seed files in the shape of seeds/FORMAT.md, and configs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from feeder.config import Config, SeedsSource
from feeder.rules import UrlRules
from feeder.sites import SHIPPED, load_site

# Nothing from the environment pytest runs in may reach a child feeder: under systemd these would change its
# log format (JOURNAL_STREAM) or send its notifications to the real service manager. A far-off time zone
# shows any local-time bug.
SYSTEMD_VARIABLES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM", "LISTEN_FDS", "LISTEN_PID")
CHILD_ENV = {
    **{k: v for k, v in os.environ.items() if k not in SYSTEMD_VARIABLES},
    "TZ": "Asia/Tokyo",
    "PYTHONIOENCODING": "utf-8",
    "COLUMNS": "200",
}

# The clock every test pins: well after the bundled articles, so their dates are credible.
NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)

CHINA_URL = "https://www.rfi.fr/cn/%E4%B8%AD%E5%9B%BD/20240109-example-article"
SHARE_BLOCK = (
    '<div><div>分享 :</div><div><a href="https://www.facebook.com/dialog/share?href=https%3A%2F%2Frfi.my%2FAB12.F"'
    ' target="_blank"><span></span></a><a href="whatsapp://send?text=x%20-%20https%3A%2F%2Frfi.my%2FAB12.W">'
    "<span></span></a><span data-root-share><share-button></share-button><share-modal></share-modal></span>"
    "</div></div>"
)


def seed_text(
    url: str = CHINA_URL,
    title: str = "示例标题",
    *,
    scraped_ms: int | None = 1704791701000,
    date_div: str | None = "09/01/2024 - 10:05",
    image: str | None = "https://s.rfi.fr/media/display/example/w:1280/p:16x9/example.jpg",
    lead: str = "这是导语。",
    body: str = "<p>第一段正文。</p><p>第二段正文。</p>",
    share: bool = True,
) -> str:
    """The text of one seed file; each part can be changed or left out."""
    lines = [] if scraped_ms is None else [f"<!--{scraped_ms}-->"]
    lines += [f"[{title}]({url})", "------", ""]
    html = f"<div>{date_div}</div>" if date_div else ""
    html += f'<img src="{image}">' if image else ""
    html += f"<p><strong>{lead}        </strong></p>" if lead else ""
    html += f"<div>{body}<div data-selfpromo-newsletter></div><div data-selfpromo-app></div></div>"
    html += SHARE_BLOCK if share else ""
    return "\n".join([*lines, html]) + "\n"


def seeds_folder(config: Config) -> Path:
    """The folder of a config's first source, which tests make a seeds source."""
    source = config.sources[0]
    assert isinstance(source, SeedsSource)
    return source.path


def write_seed(folder: Path, name: str, text: str | bytes) -> Path:
    """Write a seed file (text as UTF-8) and return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def config_text(*, seeds: str = "seeds", extra_feed: str = "", max_entries: int = 200) -> str:
    """A config.yaml with one seeds source and one feed, paths relative to its folder."""
    return (
        "output_dir: public\n"
        "state_dir: state\n"
        "base_url: http://127.0.0.1:8080/\n"
        "sources:\n"
        "  - name: seeds\n"
        "    kind: seeds\n"
        f"    path: {seeds}\n"
        "    interval: 1m\n"
        "feeds:\n"
        "  - name: rfi-cn\n"
        "    title: RFI 中文\n"
        "    sources: [seeds]\n"
        f"    max_entries: {max_entries}\n"
        f"{extra_feed}"
    )


def run_feeder(
    config: Path, *args: str, expect: int = 0, timeout: float = 60, env: Mapping[str, str] = CHILD_ENV
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m feeder <args> --config <config>`` in the config's folder; check its exit code."""
    result = subprocess.run(
        [sys.executable, "-m", "feeder", *args, "--config", str(config)],
        cwd=config.parent,
        env=dict(env),
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=timeout,
        check=False,
    )
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == expect, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (bound once, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


RFI = load_site(SHIPPED / "rfi-cn.yaml")
"""The shipped rules of RFI 中文, as the seeds and the rfi-cn site source read pages by."""


def rfi_urls(*hosts: str) -> UrlRules:
    """RFI's URL rules with these hosts allowed (www.rfi.fr when none is given)."""
    return RFI.urls.with_hosts(frozenset(hosts or ("www.rfi.fr",)))
