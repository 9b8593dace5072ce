"""deploy/: the systemd units pass systemd's own checks, and nginx serves the output folder as feeder does."""

from __future__ import annotations

import gzip
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from feeder.config import HttpConfig
from feeder.publish import publish
from tests.builders import free_port

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
FEEDER = Path(sys.executable).parent / "feeder"


def _require(tool: str, package: str) -> str:
    path = shutil.which(tool)
    if path:
        return path
    if os.environ.get("CI"):
        pytest.fail(f"{tool} is missing: apt-get install {package}")
    pytest.skip(f"{tool} is not installed (apt-get install {package})")


UNITS = {
    # the file shipped: (the name it is checked under, its ExecStart)
    "feeder.service": ("feeder.service", "/opt/feeder/venv/bin/feeder run --config /etc/feeder/config.yaml"),
    "feeder-worker@.service": (
        "feeder-worker@1.service",  # a template is checked as one of its instances, as systemctl starts it
        "/opt/feeder/venv/bin/feeder worker --config /etc/feeder/config.yaml",
    ),
}
HARDENING_FROM = "NoNewPrivileges"
"""Every setting from this one on, in feeder.service, is its sandbox, which the worker's repeats."""


def _settings(name: str) -> dict[str, list[str]]:
    """A shipped unit's settings, each with its values in order (a key may be repeated)."""
    settings: dict[str, list[str]] = {}
    for line in (DEPLOY / name).read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    return settings


def _seconds(timespan: str) -> int:
    """A systemd time span as the units here write it: '30s', '5min', '1h'."""
    match = re.fullmatch(r"(\d+)(s|min|h)?", timespan)
    assert match, timespan
    return int(match.group(1)) * {None: 1, "s": 1, "min": 60, "h": 3600}[match.group(2)]


@pytest.fixture(params=sorted(UNITS))
def unit(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """A shipped unit with ExecStart pointing at this environment's feeder, which verify requires to exist."""
    shipped = str(request.param)
    name, exec_start = UNITS[shipped]
    text = (DEPLOY / shipped).read_text(encoding="utf-8")
    assert f"ExecStart={exec_start}" in text.splitlines()
    path = tmp_path / name
    path.write_text(text.replace("/opt/feeder/venv/bin/feeder", str(FEEDER)), encoding="utf-8")
    return path


def test_the_units_pass_systemd_analyze_verify(unit: Path) -> None:
    analyze = _require("systemd-analyze", "systemd")
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""


def test_the_units_score_at_most_2_in_the_security_analysis(unit: Path) -> None:
    analyze = _require("systemd-analyze", "systemd")
    result = subprocess.run(
        [analyze, "security", "--offline=true", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    match = re.search(rf"Overall exposure level for {re.escape(unit.name)}: ([\d.]+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 2.0


def test_the_unit_is_notify_with_reload_and_a_watchdog() -> None:
    settings = {key: values[-1] for key, values in _settings("feeder.service").items()}
    assert settings["Type"] == "notify"
    assert settings["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert settings["User"] == "feeder"
    assert settings["StateDirectory"] == "feeder"
    assert settings["ReadWritePaths"] == "/var/www/feeder"
    assert int(settings["WatchdogSec"].rstrip("s")) > 0


def test_the_worker_unit_is_a_template_restarted_on_failure_and_stopped_gracefully() -> None:
    settings = _settings("feeder-worker@.service")
    one = {key: values[-1] for key, values in settings.items()}
    assert "%i" in one["Description"]  # the instance only numbers the workers of one machine
    assert "%i" not in one["ExecStart"]  # every instance runs the same worker with the same config
    assert one["Type"] == "exec"  # the worker does not notify: no notify, watchdog or reload
    assert not {"NotifyAccess", "WatchdogSec", "ExecReload"} & settings.keys()
    assert one["Restart"] == "on-failure"
    assert one["KillSignal"] == "SIGTERM"  # procrastinate's worker then waits for its running polls
    # long enough for a poll to finish: several requests, each allowed the default http.deadline
    assert _seconds(one["TimeoutStopSec"]) >= 4 * HttpConfig().deadline.total_seconds()
    assert (one["User"], one["Group"]) == ("feeder", "feeder")
    assert not {"StateDirectory", "ReadWritePaths"} & settings.keys()  # it writes no state and no output


def test_the_worker_waits_for_the_network_and_a_local_postgresql_without_requiring_it() -> None:
    settings = _settings("feeder-worker@.service")
    for key in ("After", "Wants"):
        assert {"network-online.target", "postgresql.service"} <= {u for v in settings[key] for u in v.split()}
    assert not {"Requires", "Requisite", "BindsTo"} & settings.keys()  # the database may be on another machine


def test_the_service_comes_after_a_local_postgresql_but_never_starts_one() -> None:
    settings = _settings("feeder.service")
    assert "postgresql.service" in {u for v in settings["After"] for u in v.split()}
    assert "postgresql.service" not in {u for v in settings["Wants"] for u in v.split()}  # SQLite needs none


def test_the_worker_has_the_same_sandbox_as_the_service() -> None:
    service = list(_settings("feeder.service").items())
    start = [key for key, _ in service].index(HARDENING_FROM)
    worker = _settings("feeder-worker@.service")
    assert {key: worker.get(key) for key, _ in service[start:]} == dict(service[start:])
    assert worker["ProtectSystem"] == ["strict"]


def test_nginx_does_not_proxy_the_control_port() -> None:
    """The control API and status page stay on loopback: the snippet only shows, commented, how to restrict them."""
    lines = (DEPLOY / "nginx.conf").read_text(encoding="utf-8").splitlines()
    active = [line.split("#", 1)[0] for line in lines]
    assert not [line for line in active if "proxy_pass" in line or "8081" in line]
    proxied = [n for n, line in enumerate(lines) if "proxy_pass http://127.0.0.1:8081/" in line]
    assert len(proxied) == 1
    assert any("deny all;" in line for line in lines[proxied[0] - 4 : proxied[0]])


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[str]:
    """nginx with deploy/nginx.conf (listen and root adjusted) over a published output folder."""
    binary = _require("nginx", "nginx-light")
    output = tmp_path / "public"
    publish(output, {"rfi-cn.atom": b"<feed/>" * 100, "rfi-cn.rss": b"<rss/>", "index.html": b"<html></html>"})
    (output / ".rfi-cn.atom.123.tmp").write_bytes(b"half a file")
    port = free_port()
    site = (DEPLOY / "nginx.conf").read_text(encoding="utf-8")
    site = site.replace("listen 80;", f"listen 127.0.0.1:{port};").replace("listen [::]:80;", "")
    site = site.replace("root /var/www/feeder;", f"root {output};")
    conf = tmp_path / "nginx.conf"
    # as root, nginx's workers would otherwise drop to a user that cannot enter pytest's 0700 folders
    user = "user root;\n" if os.geteuid() == 0 else ""
    conf.write_text(
        f"{user}worker_processes 1;\ndaemon off;\npid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\n"
        f"events {{}}\nhttp {{ include /etc/nginx/mime.types; access_log off;\n{site}\n}}\n",
        encoding="utf-8",
    )
    process = subprocess.Popen([binary, "-c", str(conf), "-p", str(tmp_path)])
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url, timeout=1):
                    break
            except OSError:
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def _get(url: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def test_nginx_serves_feeds_with_their_types_validators_and_gzip(nginx: str) -> None:
    status, headers, body = _get(nginx + "rfi-cn.atom")
    assert (status, headers["Content-Type"], body) == (200, "application/atom+xml; charset=utf-8", b"<feed/>" * 100)
    assert headers["Cache-Control"] == "max-age=60"
    assert _get(nginx + "rfi-cn.rss")[1]["Content-Type"] == "application/rss+xml; charset=utf-8"
    assert _get(nginx + "rfi-cn.atom", **{"If-None-Match": headers["ETag"]})[0] == 304
    status, zipped_headers, zipped = _get(nginx + "rfi-cn.atom", **{"Accept-Encoding": "gzip"})
    assert zipped_headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(zipped) == body


def test_nginx_hides_temporary_files(nginx: str) -> None:
    assert _get(nginx + ".rfi-cn.atom.123.tmp")[0] == 404
