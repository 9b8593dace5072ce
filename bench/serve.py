"""Serving benchmark: feeder's built-in server, aiohttp's web.static and nginx on the same 200 KB feed, under wrk.

Run with `make bench` (needs Debian's nginx and wrk), or alone: `.venv/bin/python bench/serve.py`. Every server
gets one worker process on 127.0.0.1 and serves the same output folder; nginx uses deploy/nginx.conf; aiohttp
is the fastest Python option tried before the built-in server was written. Scenarios alternate between the
servers for several rounds; the best of each is compared with nginx's and every sample is printed.
Target: built-in >= 0.5x nginx on 304 responses; the 200 and gzip rows are for information.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

if not __package__:  # run as a script: make the bench package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Figure, Samples, alternate, free_port, synthetic_entries
from feeder.config import parse_config
from feeder.publish import publish
from feeder.render import render_feed

ROOT = Path(__file__).resolve().parent.parent
TARGET_304_RATIO = 0.5
SERVERS = ("feeder", "aiohttp", "nginx")


def build_output(folder: Path, port: int) -> tuple[Path, int]:
    """A config and an output folder whose Atom feed is about 200 KB; returns (config path, feed size)."""
    config_path = folder / "config.yaml"
    config_path.write_text(
        f"output_dir: public\nstate_dir: state\nbase_url: http://127.0.0.1:{port}/\n"
        f"server: {{host: 127.0.0.1, port: {port}}}\n"
        "sources: [{name: seeds, kind: seeds, path: seeds, interval: 1m}]\n"
        "feeds: [{name: rfi-cn, title: RFI 中文, sources: [seeds]}]\n",
        encoding="utf-8",
    )
    (folder / "seeds").mkdir()
    config = parse_config(config_path.read_text(encoding="utf-8"), config_path)
    feed = config.feeds[0]
    count = 10
    while True:
        files = render_feed(
            feed,
            synthetic_entries(count),
            base_url=config.base_url,
            updated=datetime(2024, 6, 1, tzinfo=UTC),
            ttl_minutes=1,
        )
        if len(files["rfi-cn.atom"]) >= 200_000:
            break
        count += 5
    publish(config.output_dir, {"rfi-cn.atom": files["rfi-cn.atom"]})
    return config_path, len(files["rfi-cn.atom"])


def start_nginx(folder: Path, output: Path, port: int) -> subprocess.Popen[bytes]:
    site = (ROOT / "deploy" / "nginx.conf").read_text(encoding="utf-8")
    site = site.replace("listen 80;", f"listen 127.0.0.1:{port};").replace("listen [::]:80;", "")
    site = site.replace("root /var/www/feeder;", f"root {output};")
    conf = folder / "nginx.conf"
    conf.write_text(
        "worker_processes 1;\ndaemon off;\n"
        f"pid {folder}/nginx.pid;\nerror_log {folder}/nginx-error.log;\n"
        "events { worker_connections 4096; }\n"
        f"http {{ include /etc/nginx/mime.types; access_log off;\n{site}\n}}\n",
        encoding="utf-8",
    )
    return subprocess.Popen(["nginx", "-c", str(conf), "-p", str(folder)])


def wait_for(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/rfi-cn.atom", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing answered on port {port}")


def etag_of(port: int, gzip: bool) -> str:
    headers = {"Accept-Encoding": "gzip"} if gzip else {}
    request = urllib.request.Request(f"http://127.0.0.1:{port}/rfi-cn.atom", headers=headers)
    with urllib.request.urlopen(request, timeout=5) as response:
        return str(response.headers["ETag"])


def wrk(port: int, headers: dict[str, str], seconds: int, connections: int) -> float:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    output = subprocess.run(
        [*command, f"http://127.0.0.1:{port}/rfi-cn.atom"], capture_output=True, text=True, check=True
    ).stdout
    if "Non-2xx" in output or "Socket errors" in output:
        raise SystemExit(f"wrk saw errors:\n{output}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if not match:
        raise SystemExit(f"cannot read wrk's output:\n{output}")
    return float(match.group(1))


Headers = Callable[[str], dict[str, str]]


@contextmanager
def running_servers() -> Iterator[tuple[dict[str, int], int]]:
    """The three servers over one temporary output folder; yields their ports and the feed file's size."""
    with tempfile.TemporaryDirectory(prefix="feeder-bench-") as tmp:
        folder = Path(tmp)
        folder.chmod(0o755)  # nginx's workers run as an unprivileged user
        ports = {name: free_port() for name in SERVERS}
        config_path, size = build_output(folder, ports["feeder"])
        aiohttp_static = Path(__file__).with_name("aiohttp_static.py")
        servers = {
            "feeder": subprocess.Popen(
                [sys.executable, "-m", "feeder", "serve", "--config", str(config_path)], stderr=subprocess.DEVNULL
            ),
            "aiohttp": subprocess.Popen(
                [sys.executable, str(aiohttp_static), str(folder / "public"), str(ports["aiohttp"])]
            ),
            "nginx": start_nginx(folder, folder / "public", ports["nginx"]),
        }
        try:
            for port in ports.values():
                wait_for(port)
            yield ports, size
        finally:
            for process in servers.values():
                process.terminate()
                process.wait(timeout=10)


def scenarios(ports: dict[str, int]) -> dict[str, Headers]:
    """Each scenario's request headers, per server (a 304 needs that server's own ETag)."""
    return {
        "200": lambda server: {},
        "304 (If-None-Match)": lambda server: {"If-None-Match": etag_of(ports[server], gzip=False)},
        "200 gzip": lambda server: {"Accept-Encoding": "gzip"},
    }


def measure(ports: dict[str, int], rounds: int, seconds: int, connections: int) -> dict[str, Samples]:
    """Requests per second of every server in every scenario, the servers alternating round after round."""

    def contender(server: str, headers_for: Headers) -> Callable[[], float]:
        return lambda: wrk(ports[server], headers_for(server), seconds, connections)

    return {
        name: alternate(rounds, {server: contender(server, headers_for) for server in SERVERS})
        for name, headers_for in scenarios(ports).items()
    }


def ratio(samples: Samples, server: str) -> float:
    return samples.best(server, lowest=False) / samples.best("nginx", lowest=False)


def to_figures(results: dict[str, Samples]) -> list[Figure]:
    """feeder against nginx per scenario: the 304 row has the target, the others are for information."""
    found: list[Figure] = []
    for name, samples in results.items():
        checked = name.startswith("304")
        found.append(
            Figure(
                name=f"serve {name}: feeder vs nginx",
                measured=samples.best("feeder", lowest=False),
                unit="req/s",
                target=f"≥ {TARGET_304_RATIO}× nginx" if checked else "— (information)",
                met=ratio(samples, "feeder") >= TARGET_304_RATIO if checked else True,
                floor=samples.best("nginx", lowest=False),
                note=f"aiohttp web.static {samples.best('aiohttp', lowest=False):.0f} req/s, "
                f"{ratio(samples, 'aiohttp'):.2f}× nginx",
            )
        )
    return found


def figures(rounds: int = 3, seconds: int = 3, connections: int = 50) -> list[Figure]:
    """The serving figures (higher is better: the "floor" column is nginx, the reference to approach)."""
    with running_servers() as (ports, size):
        print(describe(size, rounds, seconds, connections))
        results = measure(ports, rounds, seconds, connections)
    for name, samples in results.items():
        samples.show(f"serve {name}", "req/s", digits=0)
    return to_figures(results)


def describe(size: int, rounds: int, seconds: int, connections: int) -> str:
    return (
        f"serve: feed file {size} bytes; wrk -t1 -c{connections} -d{seconds}s, "
        f"{rounds} rounds alternating, best of each; one worker process per server"
    )


def print_report(results: dict[str, Samples]) -> None:
    print(
        f"{'scenario':<22}{'feeder':>9}{'aiohttp':>9}{'nginx':>9}{'feeder/nginx':>14}{'aiohttp/nginx':>15}"
        "   samples req/s (feeder | aiohttp | nginx)"
    )
    for name, samples in results.items():
        best = {server: samples.best(server, lowest=False) for server in SERVERS}
        shown = " | ".join(" ".join(f"{v:.0f}" for v in samples.values[server]) for server in SERVERS)
        print(
            f"{name:<22}{best['feeder']:>9.0f}{best['aiohttp']:>9.0f}{best['nginx']:>9.0f}"
            f"{ratio(samples, 'feeder'):>14.2f}{ratio(samples, 'aiohttp'):>15.2f}   {shown}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=50)
    args = parser.parse_args()
    for tool in ("nginx", "wrk"):
        if not shutil.which(tool):
            print(f"bench/serve.py needs {tool}: apt-get install nginx-light wrk", file=sys.stderr)
            return 2
    with running_servers() as (ports, size):
        print(describe(size, args.rounds, args.seconds, args.connections))
        results = measure(ports, args.rounds, args.seconds, args.connections)
    print_report(results)
    met = ratio(results["304 (If-None-Match)"], "feeder") >= TARGET_304_RATIO
    print(f"target: feeder >= {TARGET_304_RATIO}x nginx on 304s: {'met' if met else 'NOT met'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
