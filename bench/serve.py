"""Serving benchmark: feeder's built-in server, aiohttp's web.static and nginx on the same 200 KB feed, under wrk.

Run with `make bench` (needs Debian's nginx and wrk). Every server gets one
worker process on 127.0.0.1 and serves the same output folder; nginx uses
deploy/nginx.conf; aiohttp is the fastest Python option tried before the
built-in server was written. Scenarios alternate between the servers for
several rounds; the best of each is compared with nginx's and every sample is
printed. Target: built-in >= 0.25x nginx on 304 responses.
"""

from __future__ import annotations

import argparse
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from feeder.config import parse_config
from feeder.models import Entry
from feeder.publish import publish
from feeder.render import render_feed

ROOT = Path(__file__).resolve().parent.parent
TARGET_304_RATIO = 0.25
SERVERS = ("feeder", "aiohttp", "nginx")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def synthetic_entries(count: int) -> list[Entry]:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    paragraph = "<p>" + "法国国际广播电台中文网报道，这是一段用于测试的正文内容。" * 6 + "</p>"
    return [
        Entry(
            url=f"https://www.rfi.fr/cn/%E4%B8%AD%E5%9B%BD/20240101-bench-{n}",
            title=f"基准测试文章 {n}",
            section="中国",
            categories=("中国",),
            author=None,
            lead="导语" * 40,
            image=f"https://s.rfi.fr/media/display/bench/w:1280/p:16x9/{n}.jpg",
            content_html=paragraph * 4,
            published=start + timedelta(hours=n),
            updated=start + timedelta(hours=n),
        )
        for n in range(count)
    ]


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
            print(
                f"feed file: {size} bytes; wrk -t1 -c{args.connections} -d{args.seconds}s, "
                f"{args.rounds} rounds alternating, best of each; one worker process per server"
            )
            return report(ports, args)
        finally:
            for process in servers.values():
                process.terminate()
                process.wait(timeout=10)


def report(ports: dict[str, int], args: argparse.Namespace) -> int:
    scenarios: dict[str, Callable[[str], dict[str, str]]] = {
        "200": lambda server: {},
        "304 (If-None-Match)": lambda server: {"If-None-Match": etag_of(ports[server], gzip=False)},
        "200 gzip": lambda server: {"Accept-Encoding": "gzip"},
    }
    ratios: dict[str, float] = {}
    print(
        f"{'scenario':<22}{'feeder':>9}{'aiohttp':>9}{'nginx':>9}{'feeder/nginx':>14}{'aiohttp/nginx':>15}"
        "   samples req/s (feeder | aiohttp | nginx)"
    )
    for name, headers_for in scenarios.items():
        samples: dict[str, list[float]] = {server: [] for server in SERVERS}
        for _ in range(args.rounds):
            for server in SERVERS:
                samples[server].append(wrk(ports[server], headers_for(server), args.seconds, args.connections))
        best = {server: max(values) for server, values in samples.items()}
        ratios[name] = best["feeder"] / best["nginx"]
        shown = " | ".join(" ".join(f"{v:.0f}" for v in samples[server]) for server in SERVERS)
        print(
            f"{name:<22}{best['feeder']:>9.0f}{best['aiohttp']:>9.0f}{best['nginx']:>9.0f}"
            f"{ratios[name]:>14.2f}{best['aiohttp'] / best['nginx']:>15.2f}   {shown}"
        )
    met = ratios["304 (If-None-Match)"] >= TARGET_304_RATIO
    print(f"target: feeder >= {TARGET_304_RATIO}x nginx on 304s: {'met' if met else 'NOT met'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
