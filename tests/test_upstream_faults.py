"""End-to-end: the upstream fault matrix — one RFI feed misbehaves, the rest of the poll must not notice.

Every case runs the real ``feeder refresh`` (the command line, environment, folder and checks of
tests.builders.run_feeder, which cannot wrap the command, so run_measured does it: under ``/usr/bin/time -f %M``,
or else under a tiny parent reading ``getrusage(RUSAGE_CHILDREN)``, for the child's own peak RSS) against a local
fake RFI on 127.0.0.1 that serves two feeds: ``/cn/rss`` is healthy, ``/cn/中国/rss`` misbehaves in one way
per case (hangs, drips, never ends, inflates to 50 MB, redirects in circles or abroad, asks to wait, fails,
serves HTML, nothing, broken or mislabelled bytes, 10 000 items, 100 000 nested elements, XXE, billion
laughs). A second local server plays a foreign host and records every request: it must receive none. A seeds
source is configured too. After each refresh the test checks the time taken, the peak memory, that no
foreign host or local file leaked in, that the error shows in ``feeder status`` and state/status.json and
never as an entry, and that the healthy feed's items and the seeds are published.

``fulltext`` is off: the matrix is about feeds, and article-page requests would only add noise.
A summary table (fault, seconds, peak RSS, outcome) is printed at the end of the session.
"""

from __future__ import annotations

import gzip
import json
import re
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, unquote, urlsplit

import feedparser
import pytest

from tests.builders import CHILD_ENV, run_feeder, seed_text, write_seed

pytestmark = pytest.mark.e2e

RFI = "https://www.rfi.fr"
HEALTHY_PATH = "/cn/rss"
FAULTY_PATH = "/cn/中国/rss"
HEALTHY_URL = RFI + quote(HEALTHY_PATH)
FAULTY_URL = RFI + quote(FAULTY_PATH)  # https://www.rfi.fr/cn/%E4%B8%AD%E5%9B%BD/rss, as configured
RSS = "application/rss+xml; charset=utf-8"

CONNECT_TIMEOUT = READ_TIMEOUT = 2.0
DEADLINE = 3.0
MAX_FEED_BYTES = 2_000_000
# The command's start (imports, config, database) and its publishing, on top of the fetch deadline.
MARGIN = 5.0
RSS_LIMIT_MB = 300.0
BOMB_INFLATED = 50 * 1024 * 1024
# The growth over a healthy refresh's peak RSS that still counts as "far below" the 50 MB a bomb inflates to.
GROWTH_LIMIT_MB = 20.0
BULK_ITEMS = 10_000
BULK_SECONDS = 15.0  # ingesting 10 000 items is real work; the fetch itself is bounded by the deadline

FAULT_MARK = "FAULT-BODY-7c41e9"  # in every misbehaving body: must never be published
CANARY_TEXT = "CANARY-3f8a2d-only-an-xxe-could-read-this"
PASSWD_MARKERS = ("root:x:0:0", "/usr/sbin/nologin")
TIME = Path("/usr/bin/time")
# When /usr/bin/time is missing: a parent whose only child is feeder reads that child's peak RSS (KiB on Linux).
RUSAGE_WRAPPER = (
    "import resource, subprocess, sys\n"
    "code = subprocess.call(sys.argv[2:])\n"
    "with open(sys.argv[1], 'w') as f:\n"
    "    f.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))\n"
    "sys.exit(code)\n"
)


def canonical(path: str) -> str:
    return RFI + quote(path)


# The documents ---------------------------------------------------------------------------------------------


def rss(
    items: list[tuple[str, str, datetime]],
    *,
    declaration: str = '<?xml version="1.0" encoding="UTF-8"?>',
    channel: str = "RFI - 中文",
) -> str:
    """An RSS 2.0 feed of (path, title, published) items."""
    body = "".join(
        f"<item><title>{title}</title><link>{RFI}{path}</link><description>{title}.</description>"
        f"<pubDate>{format_datetime(moment, usegmt=True)}</pubDate></item>"
        for path, title, moment in items
    )
    return (
        f'{declaration}<rss version="2.0"><channel><title>{channel}</title><link>{RFI}/cn/</link>'
        f"<description>RFI</description>{body}</channel></rss>"
    )


HEALTHY_ITEMS = [
    (f"/cn/国际/20240110-healthy-{n}", f"正常条目第{n}篇", datetime(2024, 1, 10, 9, n, tzinfo=UTC)) for n in (1, 2, 3)
]
SEEDS = [
    (f"/cn/法国/20240108-seed-{n}", f"种子文章第{n}篇", f"08/01/2024 - 1{n}:05", f"{n:03d}_{n:016x}.txt")
    for n in (1, 2)
]
EXPECTED_IDS = {canonical(p) for p, _, _ in HEALTHY_ITEMS} | {canonical(p) for p, _, _, _ in SEEDS}
# Items the misbehaving feed lists when it does carry a feed: published only when the feed is sound.
CHARSET_ITEMS = [
    (f"/cn/中国/20240111-charset-{n}", f"中文标题第{n}篇：长江与黄河", datetime(2024, 1, 11, 8, n, tzinfo=UTC))
    for n in (1, 2)
]
LATIN1_ITEMS = [
    (
        f"/cn/france/20240111-latin1-{n}",
        f"Élysée : réunion n°{n} à l'Hôtel de Ville",
        datetime(2024, 1, 11, 7, n, tzinfo=UTC),
    )
    for n in (1, 2)
]
BROKEN_ITEMS = [
    (f"/cn/中国/20240111-broken-{n}", f"坏条目{n}", datetime(2024, 1, 11, 6, n, tzinfo=UTC)) for n in (1, 2)
]
BULK_EPOCH = datetime(2023, 1, 1, tzinfo=UTC)  # older than everything else: the newest 200 stay the healthy ones


@cache
def healthy_feed() -> bytes:
    return rss(HEALTHY_ITEMS).encode()


@cache
def bulk_feed() -> bytes:
    """10 000 valid items, compact enough to stay under max_feed_bytes."""
    items = [(f"/cn/x/2023-bulk-{n}", f"批量{n}", BULK_EPOCH + timedelta(minutes=n)) for n in range(BULK_ITEMS)]
    data = rss(items).encode()
    assert len(data) < MAX_FEED_BYTES, len(data)
    return data


@cache
def double_gzip_bomb() -> bytes:
    """The bomb gzipped once more (Content-Encoding: gzip, gzip): a few KB on the wire."""
    return gzip.compress(gzip_bomb(), 9)


@cache
def gzip_bomb() -> bytes:
    """A gzip body of about 50 KB that inflates to 50 MiB (an RSS start, then spaces), built in pieces."""
    out = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: gzip framing
    parts = [out.compress(b'<?xml version="1.0"?><rss version="2.0"><channel><title>' + FAULT_MARK.encode())]
    piece = b" " * (1024 * 1024)
    parts += [out.compress(piece) for _ in range(BOMB_INFLATED // len(piece))]
    parts.append(out.flush())
    return b"".join(parts)


def invalid_utf8_feed() -> bytes:
    text = rss(BROKEN_ITEMS).encode()
    return text.replace("坏条目1".encode(), b"\xff\xfe\xc3\x28" + FAULT_MARK.encode(), 1)


def deep_feed(levels: int = 100_000) -> bytes:
    return (
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>{FAULT_MARK}</title>'
        + "<x>" * levels
        + "</x>" * levels
        + "</channel></rss>"
    ).encode()


def xxe_feed(canary: Path, foreign: str) -> bytes:
    """An external entity naming the canary file, and a parameter entity fetching a DTD from the foreign host."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        "<!DOCTYPE rss [\n"
        f'  <!ENTITY xxe SYSTEM "file://{canary}">\n'
        f'  <!ENTITY % remote SYSTEM "{foreign}/evil.dtd">\n'
        "  %remote;\n"
        "]>\n"
        f'<rss version="2.0"><channel><title>{FAULT_MARK}</title><link>{RFI}/cn/</link><description>x</description>'
        f"<item><title>&xxe;</title><link>{RFI}/cn/中国/20240105-xxe-probe</link><description>&xxe;</description>"
        "</item></channel></rss>"
    ).encode()


def external_dtd_feed(foreign: str) -> bytes:
    """No internal subset: the DTD that would define &xxe; lives on the foreign host, which must not be asked."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<!DOCTYPE rss SYSTEM "{foreign}/evil.dtd">\n'
        f'<rss version="2.0"><channel><title>t</title><link>{RFI}/cn/</link><description>x</description>'
        f"<item><title>&xxe;</title><link>{RFI}/cn/中国/20240105-dtd-probe</link><description>&xxe;</description>"
        "</item></channel></rss>"
    ).encode()


def billion_laughs() -> bytes:
    levels = ['  <!ENTITY lol0 "lol">']
    levels += [f'  <!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)]
    return (
        '<?xml version="1.0"?>\n<!DOCTYPE rss [\n' + "\n".join(levels) + "\n]>\n"
        f'<rss version="2.0"><channel><title>{FAULT_MARK}</title><link>{RFI}/cn/</link><description>x</description>'
        f"<item><title>&lol9;</title><link>{RFI}/cn/中国/20240109-laughs</link><description>&lol9;</description>"
        "</item></channel></rss>"
    ).encode()


# The fake RFI and the foreign host -------------------------------------------------------------------------


@dataclass
class Site:
    """One local server: what it serves (a fault for the faulty feed) and what it saw."""

    fault: Fault | None = None
    foreign: str = ""  # the foreign host's origin, for redirects and external entities pointing there
    canary: Path | None = None
    healthy_delay: float = 0.0  # seconds before the healthy feed answers
    origin: str = ""
    hits: list[str] = field(default_factory=list)  # decoded path and query of every request
    sent: int = 0  # bytes of misbehaving body written (endless body)
    errors: list[str] = field(default_factory=list)  # exceptions in the server itself: a broken fixture
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        site = self.server.site
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        with site.lock:
            site.hits.append(path + (f"?{parts.query}" if parts.query else ""))
        if site.fault is None:  # the foreign host: it only records
            self.send(404, {"Content-Type": "text/plain"}, b"foreign host")
        elif path == HEALTHY_PATH:
            site.stop.wait(site.healthy_delay)
            self.send(200, {"Content-Type": RSS}, healthy_feed())
        elif path.startswith(FAULTY_PATH):
            site.fault.serve(self)
        else:
            self.send(404, {"Content-Type": "text/plain"}, b"not found")

    def send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        try:
            self.send_response(status)
            for name, value in {**headers, "Content-Length": str(len(body))}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
        except OSError:  # the client gave up
            self.close_connection = True

    def drip(self, data: bytes) -> None:
        """Write ``data`` one byte a second until the client hangs up or the test ends."""
        self.close_connection = True
        for i in range(len(data)):
            try:
                self.wfile.write(data[i : i + 1])
            except OSError:
                return
            if self.server.site.stop.wait(1.0):
                return

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    site: Site

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError):  # a client that hung up (feeder cutting a fault short): expected
            return
        with self.site.lock:
            self.site.errors.append(repr(error))


@contextmanager
def serving(site: Site) -> Iterator[Site]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.site = site
    site.origin = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield site
    finally:
        site.stop.set()  # releases the handlers that hang or drip
        server.shutdown()
        server.server_close()
        thread.join(5)


# The faults -----------------------------------------------------------------------------------------------

Serve = Callable[[_Handler], None]
Expect = Literal["refused", "accepted", "either"]


@dataclass(frozen=True)
class Fault:
    name: str
    serve: Serve
    expect: Expect  # refused: an error; accepted: a sound feed, published; either: sound or refused, never garbled
    reason: str = ""  # a regex the problem's reason must match when refused
    items: tuple[tuple[str, str, datetime], ...] = ()  # what the faulty feed lists, when it is a sound feed
    seconds: float = DEADLINE + MARGIN
    growth_mb: float | None = None  # bound on the peak RSS growth over a healthy refresh


def _hang(h: _Handler) -> None:
    h.close_connection = True
    h.server.site.stop.wait()  # the request was read; no answer ever comes


def _drip_head(h: _Handler) -> None:
    body = rss(BROKEN_ITEMS).encode()
    h.drip(f"HTTP/1.1 200 OK\r\nContent-Type: {RSS}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)


def _drip_body(h: _Handler) -> None:
    body = rss(BROKEN_ITEMS).encode()
    h.wfile.write(f"HTTP/1.1 200 OK\r\nContent-Type: {RSS}\r\nContent-Length: {len(body)}\r\n\r\n".encode())
    h.drip(body)


def _endless(h: _Handler) -> None:
    site = h.server.site
    h.close_connection = True
    h.wfile.write(f"HTTP/1.1 200 OK\r\nContent-Type: {RSS}\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
    chunk = (f"<!-- {FAULT_MARK} -->".encode() * 4000)[: 64 * 1024]
    framed = b"%x\r\n" % len(chunk) + chunk + b"\r\n"
    while not site.stop.is_set():
        try:
            h.wfile.write(framed)
        except OSError:
            return
        with site.lock:
            site.sent += len(chunk)


def _bomb(h: _Handler) -> None:
    h.send(200, {"Content-Type": RSS, "Content-Encoding": "gzip"}, gzip_bomb())


def _double_bomb(h: _Handler) -> None:
    h.send(200, {"Content-Type": RSS, "Content-Encoding": "gzip, gzip"}, double_gzip_bomb())


def _endless_head(h: _Handler) -> None:
    site = h.server.site
    h.close_connection = True
    h.wfile.write(b"HTTP/1.1 200 OK\r\n")
    line = f"X-Filler: {FAULT_MARK}{'x' * 1000}\r\n".encode()
    while not site.stop.is_set():
        try:
            h.wfile.write(line)
        except OSError:
            return
        with site.lock:
            site.sent += len(line)


def _redirect_loop(h: _Handler) -> None:
    # /cn/中国/rss → /cn/中国/rss-again → https://www.rfi.fr/cn/%E4%B8%AD%E5%9B%BD/rss (the origin, again) → …
    target = FAULTY_URL if unquote(urlsplit(h.path).path).endswith("again") else quote(FAULTY_PATH + "-again")
    h.send(302, {"Location": target}, FAULT_MARK.encode())


def _redirect_chain(h: _Handler) -> None:
    hop = int(urlsplit(h.path).query.removeprefix("hop=") or 0)
    h.send(302, {"Location": f"{quote(FAULTY_PATH)}?hop={hop + 1}"}, FAULT_MARK.encode())


def _redirect_foreign(spelling: str) -> Serve:
    """A redirect to the foreign host; ``spelling`` is a format with {foreign} (http://127.0.0.1:PORT)."""

    def serve(h: _Handler) -> None:
        foreign = h.server.site.foreign
        location = spelling.format(foreign=foreign, authority=foreign.removeprefix("http://"), path=quote(HEALTHY_PATH))
        h.send(302, {"Location": location}, FAULT_MARK.encode())

    return serve


def _status(code: int, retry_after: Callable[[], str] | None = None) -> Serve:
    def serve(h: _Handler) -> None:
        headers = {"Content-Type": "text/html"} | ({"Retry-After": retry_after()} if retry_after else {})
        h.send(code, headers, f"<html><body>{code} {FAULT_MARK}</body></html>".encode())

    return serve


def _body(data: Callable[[], bytes], content_type: str = RSS) -> Serve:
    def serve(h: _Handler) -> None:
        h.send(200, {"Content-Type": content_type}, data())

    return serve


def _xxe(h: _Handler) -> None:
    site = h.server.site
    assert site.canary is not None
    h.send(200, {"Content-Type": RSS}, xxe_feed(site.canary, site.foreign))


def _external_dtd(h: _Handler) -> None:
    h.send(200, {"Content-Type": RSS}, external_dtd_feed(h.server.site.foreign))


def _http_date_in_90_seconds() -> str:
    return format_datetime(datetime.now(UTC) + timedelta(seconds=90), usegmt=True)


FOREIGN = r"redirected to foreign host 127\.0\.0\.1:\d+, not followed"
LATIN1_DECLARATION = '<?xml version="1.0" encoding="ISO-8859-1"?>'
HTML_PAGE = (
    f"<!DOCTYPE html><html><head><title>Access denied {FAULT_MARK}</title></head>"
    "<body><h1>Please enable JavaScript</h1></body></html>"
).encode()

FAULTS = [
    Fault("timeout", _hang, "refused", r"ReadTimeout|took more than"),
    Fault("drip-head", _drip_head, "refused", r"took more than 3 s"),
    Fault("drip-body", _drip_body, "refused", r"took more than 3 s"),
    Fault("endless-body", _endless, "refused", r"body exceeded 2000000 bytes", growth_mb=GROWTH_LIMIT_MB),
    Fault("gzip-bomb", _bomb, "refused", r"body exceeded 2000000 bytes", growth_mb=GROWTH_LIMIT_MB),
    Fault("gzip-bomb-double", _double_bomb, "refused", r"body exceeded 2000000 bytes", growth_mb=GROWTH_LIMIT_MB),
    Fault("endless-headers", _endless_head, "refused", r"RemoteProtocolError|header", growth_mb=GROWTH_LIMIT_MB),
    Fault("redirect-loop", _redirect_loop, "refused", r"redirect loop"),
    Fault("redirect-chain", _redirect_chain, "refused", r"more than \d+ redirects"),
    Fault("redirect-foreign", _redirect_foreign("{foreign}{path}"), "refused", FOREIGN),
    Fault("redirect-foreign-scheme-relative", _redirect_foreign("//{authority}{path}"), "refused", FOREIGN),
    Fault("redirect-foreign-userinfo", _redirect_foreign("http://www.rfi.fr@{authority}{path}"), "refused", FOREIGN),
    Fault("429-retry-after", _status(429, lambda: "120"), "refused", r"HTTP 429, www\.rfi\.fr asks us to wait until"),
    # Retry-After as delta-seconds (429) and as an HTTP date (503)
    Fault(
        "503-retry-after",
        _status(503, _http_date_in_90_seconds),
        "refused",
        r"HTTP 503, www\.rfi\.fr asks us to wait until",
    ),
    Fault("500", _status(500), "refused", r"HTTP 500"),
    Fault("html-as-feed", _body(lambda: HTML_PAGE, "text/html; charset=utf-8"), "refused", r"HTML page was served"),
    Fault("empty-200", _body(lambda: b""), "refused", r"feed is empty"),
    Fault("invalid-utf8", _body(invalid_utf8_feed), "refused", r"not well-formed|UTF-8|encoding"),
    Fault(
        "charset-header-latin1-body-utf8",  # no XML declaration: only the (lying) header names a charset
        _body(lambda: rss(CHARSET_ITEMS, declaration="").encode(), "application/rss+xml; charset=ISO-8859-1"),
        "accepted",
        items=tuple(CHARSET_ITEMS),
    ),
    Fault(
        "charset-header-utf8-body-latin1",  # no XML declaration; the bytes are ISO-8859-1 French
        _body(lambda: rss(LATIN1_ITEMS, declaration="", channel="RFI - Français").encode("iso-8859-1"), RSS),
        "either",
        r"not well-formed|UTF-8|encoding",
        items=tuple(LATIN1_ITEMS),
    ),
    Fault(
        "charset-header-utf8-declaration-latin1",  # the header is right; the XML declaration lies
        _body(lambda: rss(CHARSET_ITEMS, declaration=LATIN1_DECLARATION).encode(), RSS),
        "either",
        r"encoding|charset",
        items=tuple(CHARSET_ITEMS),
    ),
    Fault("10000-items", _body(bulk_feed), "accepted", seconds=BULK_SECONDS),
    Fault("deep-nesting-100000", _body(deep_feed), "refused", r"not well-formed|depth"),
    Fault("xxe-canary", _xxe, "refused", r"declares entities"),
    Fault("xxe-external-dtd-on-foreign-host", _external_dtd, "either", r"entit|DTD|DOCTYPE"),
    Fault("billion-laughs", _body(billion_laughs), "refused", r"declares entities"),
]
MATRIX = [pytest.param(f, id=f.name) for f in FAULTS]


# Running the command, measured ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    result: subprocess.CompletedProcess[str]
    seconds: float
    peak_mb: float


def run_measured(root: Path, *args: str, expect: int | None = 0, timeout: float = 60) -> Run:
    """run_feeder's command, environment and checks, plus wall time and the child's peak RSS."""
    feeder = [sys.executable, "-m", "feeder", *args, "--config", str(root / "config.yaml")]
    peak_file = root / "peak-rss-kib"
    if TIME.exists():
        command = [str(TIME), "-f", "%M", "-o", str(peak_file), *feeder]
    else:
        command = [sys.executable, "-c", RUSAGE_WRAPPER, str(peak_file), *feeder]
    started = time.monotonic()
    result = subprocess.run(
        command,
        cwd=root,
        env=dict(CHILD_ENV),
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=timeout,
        check=False,
    )
    seconds = time.monotonic() - started
    assert "Traceback" not in result.stderr, result.stderr
    assert expect is None or result.returncode == expect, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    # /usr/bin/time writes "Command exited with non-zero status N" first when it does; %M is the last line
    peak_kib = int(peak_file.read_text(encoding="utf-8").split()[-1])
    return Run(result, seconds, peak_kib / 1024)


def make_project(root: Path, origin: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.yaml").write_text(
        "output_dir: public\n"
        "state_dir: state\n"
        "base_url: http://127.0.0.1:8080/\n"
        "http:\n"
        "  contact: https://example.org/feeder-fault-tests\n"
        f"  connect_timeout: {CONNECT_TIMEOUT:g}s\n"
        f"  read_timeout: {READ_TIMEOUT:g}s\n"
        f"  deadline: {DEADLINE:g}s\n"
        f"  max_feed_bytes: {MAX_FEED_BYTES}\n"
        "sources:\n"
        "  - {name: seeds, kind: seeds, path: seeds}\n"
        "  - name: rfi\n"
        "    kind: site\n    site: rfi-cn\n"
        f"    feeds: [{HEALTHY_URL}, {FAULTY_URL}]\n"
        f"    origin: {origin}\n"
        "    fulltext: false\n"
        "feeds:\n"
        "  - {name: rfi-cn, title: RFI 中文, sources: [seeds, rfi]}\n",
        encoding="utf-8",
    )
    for path, title, date_div, name in SEEDS:
        write_seed(root / "seeds", name, seed_text(canonical(path), title, date_div=date_div))
    return root


# Reading the output ---------------------------------------------------------------------------------------


def written(root: Path, *, state: bool = True) -> str:
    """Every published file (gzip copies inflated) and, with ``state``, every state file (the database, status.json,
    metrics.prom), as text, to search for leaks."""
    files = sorted(p for p in (root / "public").rglob("*") if p.is_file())
    parts = [gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes() for p in files]
    if state:
        parts += [p.read_bytes() for p in sorted((root / "state").rglob("*")) if p.is_file()]
    return b"\n".join(parts).decode("utf-8", errors="replace")


def atom_entries(root: Path) -> dict[str, str]:
    """{id: title} of public/rfi-cn.atom."""
    parsed = feedparser.parse((root / "public" / "rfi-cn.atom").read_bytes())
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    return {e.id: e.title for e in parsed.entries}


def all_titles(root: Path) -> list[str]:
    """The entry titles of every Atom, RSS and JSON feed written."""
    titles: list[str] = []
    for path in sorted((root / "public").rglob("*")):
        if path.suffix in (".atom", ".rss"):
            titles += [e.title for e in feedparser.parse(path.read_bytes()).entries]
        elif path.suffix == ".json":
            titles += [item.get("title", "") for item in json.loads(path.read_bytes())["items"]]
    return titles


def rfi_status(root: Path) -> dict[str, Any]:
    status = json.loads((root / "state" / "status.json").read_text(encoding="utf-8"))
    value: dict[str, Any] = status["sources"]["rfi"]
    return value


# The summary table ---------------------------------------------------------------------------------------


@dataclass
class Row:
    fault: str
    seconds: float
    peak_mb: float
    outcome: str


@pytest.fixture(scope="session")
def table(request: pytest.FixtureRequest) -> Iterator[list[Row]]:
    rows: list[Row] = []
    yield rows
    if not rows:
        return
    width = max(len(r.fault) for r in rows)
    lines = [
        "",
        "upstream fault matrix (feeder refresh; one of two RFI feeds misbehaves):",
        f"{'fault':<{width}}  {'seconds':>7}  {'peak RSS MB':>11}  outcome",
    ]
    lines += [f"{r.fault:<{width}}  {r.seconds:>7.2f}  {r.peak_mb:>11.1f}  {r.outcome}" for r in rows]
    # shown with or without -s: the figures are the point of the run
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture is not None else nullcontext():
        print("\n".join(lines))


@pytest.fixture(scope="session")
def baseline(tmp_path_factory: pytest.TempPathFactory, table: list[Row]) -> Run:
    """A refresh with both feeds healthy: the reference for time and memory."""
    root = tmp_path_factory.mktemp("baseline")
    with (
        serving(Site()) as foreign,
        serving(Site(Fault("none", _body(healthy_feed), "accepted"), foreign.origin)) as site,
    ):
        make_project(root, site.origin)
        run = run_measured(root, "refresh")
        assert foreign.hits == []
    assert rfi_status(root)["errors"] == 0
    assert set(atom_entries(root)) >= EXPECTED_IDS
    table.append(Row("(none: both feeds healthy)", run.seconds, run.peak_mb, "published, 0 errors"))
    print(f"\nbaseline: {run.seconds:.2f} s, peak RSS {run.peak_mb:.1f} MB")
    return run


# The matrix ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", MATRIX)
def test_one_misbehaving_feed_is_contained(fault: Fault, tmp_path: Path, baseline: Run, table: list[Row]) -> None:
    canary = tmp_path / "canary.txt"
    canary.write_text(CANARY_TEXT + "\n", encoding="utf-8")
    root = tmp_path / "project"
    with serving(Site()) as foreign, serving(Site(fault, foreign.origin, canary)) as site:
        make_project(root, site.origin)
        run = run_measured(root, "refresh", timeout=fault.seconds + 30)
        foreign_hits, faulty_hits = list(foreign.hits), [h for h in site.hits if h.startswith(FAULTY_PATH)]
        sent, server_errors = site.sent, site.errors + foreign.errors
    assert server_errors == []
    growth = run.peak_mb - baseline.peak_mb
    row = Row(fault.name, run.seconds, run.peak_mb, "FAILED")  # replaced by the outcome once every check passed
    table.append(row)
    print(f"\n{fault.name}: {run.seconds:.2f} s, peak RSS {run.peak_mb:.1f} MB ({growth:+.1f} MB over healthy)")
    if sent:
        print(f"{fault.name}: the server pushed {sent / 1e6:.1f} MB before the client hung up")

    # bounded in time and memory
    assert faulty_hits, "the misbehaving feed was never requested"
    assert run.seconds < fault.seconds, f"{run.seconds:.2f} s"
    assert run.peak_mb < RSS_LIMIT_MB
    if fault.growth_mb is not None:
        # far below what the body would inflate to (50 MiB for the bomb; unbounded for the endless body)
        assert growth < fault.growth_mb, f"{growth:.1f} MB more than a healthy refresh"
    # nothing came from elsewhere
    assert foreign_hits == [], f"the foreign host was contacted: {foreign_hits}"
    everything = written(root)
    for leak in (CANARY_TEXT, *PASSWD_MARKERS, "lollollol"):
        assert leak not in everything, leak
    # the healthy feed and the seeds are published
    atom = atom_entries(root)
    assert set(atom) >= EXPECTED_IDS, sorted(EXPECTED_IDS - set(atom))
    status = rfi_status(root)
    assert status["failure"] is None
    shown = run_feeder(root / "config.yaml", "status").stdout

    refused = fault.expect == "refused" or (fault.expect == "either" and status["errors"] > 0)
    if refused:
        row.outcome = check_refused(fault, root, run=run, status=status, shown=shown, atom=atom)
    else:
        row.outcome = check_accepted(fault, root, status, atom)


def check_refused(
    fault: Fault, root: Path, *, run: Run, status: dict[str, Any], shown: str, atom: dict[str, str]
) -> str:
    """The error is reported (refresh's stderr, status.json, ``feeder status``), never published."""
    assert status["errors"] >= 1
    problems = [p for p in status["problems"] if p["file"] == FAULTY_URL]
    assert problems, status["problems"]
    reason = problems[0]["reason"]
    assert re.search(fault.reason, reason), reason
    assert f"feeder: {FAULTY_URL}: " in run.result.stderr
    assert f"{FAULTY_URL}: {reason}" in shown, shown
    assert all(p["file"] == FAULTY_URL for p in status["problems"]), status["problems"]  # the healthy feed is fine
    # never an entry: no title carries the error, nothing of the misbehaving body is published
    assert not [t for t in all_titles(root) if reason in t or "cannot fetch" in t or "HTTP " in t]
    public = written(root, state=False)
    assert FAULT_MARK not in public
    assert set(atom) == EXPECTED_IDS
    assert "\ufffd" not in public
    return f"refused: {reason}"


def check_accepted(fault: Fault, root: Path, status: dict[str, Any], atom: dict[str, str]) -> str:
    """A sound feed, however it was labelled: published with the right text, no error."""
    assert status["errors"] == 0, status["problems"]
    for path, title, _ in fault.items:
        assert atom.get(canonical(path)) == title, (path, atom.get(canonical(path)))
    assert not [t for t in atom.values() if "\ufffd" in t or "Ã" in t or "ä¸" in t]  # no mojibake
    if fault.name == "10000-items":
        entries = json.loads((root / "state" / "status.json").read_text(encoding="utf-8"))["entries"]
        assert entries == BULK_ITEMS + len(EXPECTED_IDS)
        assert status["new"] >= BULK_ITEMS
        return f"accepted: {BULK_ITEMS} items ({len(bulk_feed()) / 1e6:.2f} MB < max_feed_bytes), {entries} entries"
    if not fault.items:
        return "accepted: nothing to publish (no item with a title), no error"
    return f"accepted: {len(fault.items)} items with the right text"


def test_the_fault_server_really_misbehaves() -> None:
    """Guards on the fixtures: the bomb inflates to 50 MiB, the nesting is 100 000 deep, the bulk feed is valid."""
    inflated = 0
    decompressor = zlib.decompressobj(31)
    data = gzip_bomb()
    while data:
        inflated += len(decompressor.decompress(data, 1 << 20))
        data = decompressor.unconsumed_tail
    assert inflated > BOMB_INFLATED
    assert len(gzip_bomb()) < 100_000
    assert deep_feed().count(b"<x>") == 100_000
    assert len(feedparser.parse(bulk_feed()).entries) == BULK_ITEMS


def _late(serve: Serve, seconds: float) -> Serve:
    def late(h: _Handler) -> None:
        h.server.site.stop.wait(seconds)
        serve(h)

    return late


@pytest.mark.parametrize(
    ("code", "refusal_last"),
    [
        pytest.param(429, True, id="429-after-the-200"),
        pytest.param(503, True, id="503-after-the-200"),
        pytest.param(429, False, id="429-before-the-200"),
        pytest.param(503, False, id="503-before-the-200"),
    ],
)
def test_a_retry_after_from_one_feed_holds_the_host_for_the_next_poll(
    code: int, refusal_last: bool, tmp_path: Path
) -> None:
    """Retry-After: 120 on one feed: a refresh right after must not ask the host anything, whichever feed answered
    last in the first poll (both feeds are on www.rfi.fr; Retry-After is per host)."""
    serve = _status(code, lambda: "120")
    fault = Fault(str(code), _late(serve, 0.5) if refusal_last else serve, "refused")
    root = tmp_path / "project"
    with (
        serving(Site()) as foreign,
        serving(Site(fault, foreign.origin, healthy_delay=0 if refusal_last else 0.5)) as site,
    ):
        make_project(root, site.origin)
        first = run_measured(root, "refresh")
        assert f"HTTP {code}, www.rfi.fr asks us to wait until" in first.result.stderr
        assert sorted(site.hits) == sorted([HEALTHY_PATH, FAULTY_PATH])
        site.hits.clear()
        second = run_measured(root, "refresh", expect=None)
        hits = list(site.hits)
    assert hits == [], f"asked again within the Retry-After: {hits}"
    assert second.result.returncode == 0  # a poll skipped while the host asks to wait is no failure
    assert "rfi: poll skipped, asked to wait: www.rfi.fr is not to be asked before" in second.result.stdout
