"""feeder.serve (with served_files and request_head): a real FileServer on 127.0.0.1:0 over a tmp_path folder,
spoken to with http.client and raw sockets."""

from __future__ import annotations

import asyncio
import gzip
import http.client
import os
import re
import socket
import threading
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest

from feeder import serve
from feeder.request_head import HeadReader, Request, accepts_gzip, not_modified
from feeder.serve import FileServer
from feeder.served_files import Representation, content_type, safe_relative_path

T = TypeVar("T")

TIMEOUT = 3.0
MTIME = 1_768_478_400  # 2026-01-15T12:00:00Z, set on every file so Last-Modified is known
LAST_MODIFIED = "Thu, 15 Jan 2026 12:00:00 GMT"
STRONG_ETAG = re.compile(r'^"[0-9a-f]{32}"$')

ATOM = (
    '<?xml version="1.0" encoding="utf-8"?>\n'
    '<feed xmlns="http://www.w3.org/2005/Atom"><title>RFI 中文</title>' + "<entry/>" * 40 + "</feed>\n"
).encode()
RSS = (
    '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel><title>RFI 中文</title></channel></rss>\n'
).encode()
JSON = '{"version": "https://jsonfeed.org/version/1.1", "title": "RFI 中文", "items": []}\n'.encode()
INDEX = "<!doctype html><title>feeds</title><p>索引</p>\n".encode()
OPML = b'<?xml version="1.0" encoding="utf-8"?>\n<opml version="2.0"><head/><body/></opml>\n'
SUB_JSON = b'{"version": "https://jsonfeed.org/version/1.1", "title": "sub", "items": []}\n'
SUB_INDEX = b"<!doctype html><title>sub</title>\n"
BINARY = bytes(range(256))
SECRET = b"secret: this file is outside the output folder\n"

FILES = {
    "rfi-cn.atom": ATOM,
    "rfi-cn.atom.gz": gzip.compress(ATOM, mtime=0),
    "rfi-cn.rss": RSS,
    "rfi-cn.json": JSON,
    "index.html": INDEX,
    "feeds.opml": OPML,
    "data.bin": BINARY,
    "sub/feed.json": SUB_JSON,
    "sub/index.html": SUB_INDEX,
    "sub/.hidden.atom": ATOM,
    ".rfi-cn.atom.x1y2.tmp": ATOM,
}


def max_age(relative: str) -> int:
    """Different for every file, so a test can tell which path the header was computed for."""
    return 100 + len(relative)


def build_site(tmp_path: Path) -> Path:
    root = tmp_path / "public"
    for name, data in FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.utime(path, (MTIME, MTIME))
    (tmp_path / "secret.atom").write_bytes(SECRET)
    (tmp_path / "secretdir").mkdir()
    (tmp_path / "secretdir" / "secret.atom").write_bytes(SECRET)
    (root / "outside.atom").symlink_to(tmp_path / "secret.atom")
    (root / "outdir").symlink_to(tmp_path / "secretdir", target_is_directory=True)
    (root / "inside.atom").symlink_to("rfi-cn.atom")
    return root


@dataclass
class Site:
    root: Path
    host: str
    port: int
    loop: asyncio.AbstractEventLoop
    server: FileServer

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(TIMEOUT)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    """A FileServer on 127.0.0.1, port 0, in an asyncio loop on a background thread; stopped afterwards."""
    root = build_site(tmp_path)
    server = FileServer(root, max_age)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="test-serve-loop", daemon=True)
    thread.start()
    try:
        host, port = asyncio.run_coroutine_threadsafe(server.start("127.0.0.1", 0), loop).result(TIMEOUT)
        yield Site(root, host, port, loop, server)

        async def stop() -> None:
            await server.stop()
            for _ in range(3):  # let the closed transports run connection_lost
                await asyncio.sleep(0)

        asyncio.run_coroutine_threadsafe(stop(), loop).result(TIMEOUT)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(TIMEOUT)
        loop.close()


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


class Connection:
    """A raw TCP connection that reads HTTP/1.1 responses itself (so stray bytes after a response show)."""

    def __init__(self, address: tuple[str, int], timeout: float = TIMEOUT) -> None:
        self.sock = socket.create_connection(address, timeout=timeout)
        self.file = self.sock.makefile("rb")

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.file.close()
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def response(self, *, head: bool = False) -> Response:
        status_line = self.file.readline()
        if not status_line:
            raise EOFError("the server closed the connection instead of answering")
        version, status, _reason = status_line.decode("latin-1").rstrip("\r\n").split(" ", 2)
        assert version == "HTTP/1.1"
        headers: dict[str, str] = {}
        while True:
            line = self.file.readline()
            if line in (b"\r\n", b""):
                break
            name, sep, value = line.decode("latin-1").partition(":")
            assert sep, line
            assert name.lower() not in headers, f"duplicate header {name}"
            headers[name.lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        body = b"" if head or status == "304" else self.file.read(length)
        return Response(int(status), headers, body)

    def closed_by_peer(self) -> bool:
        """True if the server closed the connection (EOF) within the timeout, with no further bytes."""
        try:
            return self.file.read(1) == b""
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False


def request_bytes(
    target: str, method: str = "GET", headers: dict[str, str] | None = None, version: str = "HTTP/1.1"
) -> bytes:
    lines = [f"{method} {target} {version}", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in (headers or {}).items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def raw(site: Site, data: bytes) -> Response:
    """Send bytes on a fresh connection and read one response."""
    with Connection(site.address) as connection:
        connection.send(data)
        return connection.response()


def raw_closing(site: Site, data: bytes) -> tuple[Response, bool]:
    """Send bytes on a fresh connection; the response, and whether the server then closed the connection."""
    with Connection(site.address) as connection:
        connection.send(data)
        response = connection.response()
        return response, connection.closed_by_peer()


def get(site: Site, target: str, headers: dict[str, str] | None = None, method: str = "GET") -> Response:
    """One request through http.client."""
    client = http.client.HTTPConnection(site.host, site.port, timeout=TIMEOUT)
    try:
        client.request(method, target, headers=headers or {})
        answer = client.getresponse()
        body = answer.read()
        return Response(answer.status, {k.lower(): v for k, v in answer.getheaders()}, body)
    finally:
        client.close()


# --- 200 responses ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "relative", "expected_type"),
    [
        ("/rfi-cn.atom", "rfi-cn.atom", "application/atom+xml; charset=utf-8"),
        ("/rfi-cn.rss", "rfi-cn.rss", "application/rss+xml; charset=utf-8"),
        ("/rfi-cn.json", "rfi-cn.json", "application/feed+json"),
        ("/index.html", "index.html", "text/html; charset=utf-8"),
        ("/feeds.opml", "feeds.opml", "text/x-opml; charset=utf-8"),
        ("/sub/feed.json", "sub/feed.json", "application/feed+json"),
        ("/data.bin", "data.bin", "application/octet-stream"),
    ],
)
def test_get_serves_the_file_with_its_headers(site: Site, target: str, relative: str, expected_type: str) -> None:
    before = time.time()
    response = get(site, target)
    assert response.status == 200
    assert response.body == FILES[relative]
    h = response.headers
    assert h["content-type"] == expected_type
    assert h["content-length"] == str(len(FILES[relative]))
    assert STRONG_ETAG.match(h["etag"]), h["etag"]
    assert h["last-modified"] == LAST_MODIFIED
    assert parsedate_to_datetime(h["last-modified"]).timestamp() == (site.root / relative).stat().st_mtime
    assert h["cache-control"] == f"max-age={max_age(relative)}"
    assert h["vary"] == "Accept-Encoding"
    assert "content-encoding" not in h
    assert "connection" not in h
    assert h["server"] == "feeder"
    assert abs(parsedate_to_datetime(h["date"]).timestamp() - before) < 5


def test_etag_is_stable_for_a_file_and_differs_between_files(site: Site) -> None:
    first = get(site, "/rfi-cn.atom").headers["etag"]
    assert get(site, "/rfi-cn.atom").headers["etag"] == first
    etags = {get(site, f"/{name}").headers["etag"] for name in ("rfi-cn.atom", "rfi-cn.rss", "rfi-cn.json")}
    assert len(etags) == 3


def test_head_gives_the_get_headers_and_no_body(site: Site) -> None:
    with Connection(site.address) as connection:
        connection.send(request_bytes("/rfi-cn.atom", "HEAD"))
        head = connection.response(head=True)
        # had HEAD sent a body, its bytes would be read here as the next status line
        connection.send(request_bytes("/rfi-cn.atom"))
        full = connection.response()
    assert head.status == full.status == 200
    assert head.body == b""
    assert full.body == ATOM
    head.headers.pop("date")
    full.headers.pop("date")
    assert head.headers == full.headers
    assert head.headers["content-length"] == str(len(ATOM))


def test_head_through_http_client(site: Site) -> None:
    response = get(site, "/rfi-cn.rss", method="HEAD")
    assert response.status == 200
    assert response.body == b""
    assert response.headers["content-length"] == str(len(RSS))
    assert response.headers["content-type"] == "application/rss+xml; charset=utf-8"


@pytest.mark.parametrize(
    ("target", "body"),
    [("/", INDEX), ("/?utm_source=x", INDEX), ("/sub/", SUB_INDEX), ("/rfi-cn.atom?x=1#top", ATOM)],
)
def test_folder_targets_serve_index_html_and_queries_are_ignored(site: Site, target: str, body: bytes) -> None:
    response = raw(site, request_bytes(target))
    assert response.status == 200
    assert response.body == body


def test_symlink_inside_the_folder_is_served(site: Site) -> None:
    response = get(site, "/inside.atom")
    assert response.status == 200
    assert response.body == ATOM
    assert response.headers["content-type"] == "application/atom+xml; charset=utf-8"


# --- conditional requests -------------------------------------------------------------------------------------------


def plain_etag(site: Site) -> str:
    return get(site, "/rfi-cn.atom").headers["etag"]


def gzip_etag(site: Site) -> str:
    return get(site, "/rfi-cn.atom", {"Accept-Encoding": "gzip"}).headers["etag"]


@pytest.mark.parametrize(
    "if_none_match",
    ["{etag}", '"other", {etag}', '{etag},"other"', "W/{etag}", '"x", W/{etag}', "*"],
)
def test_if_none_match_gives_304_with_validators_and_no_body(site: Site, if_none_match: str) -> None:
    full = get(site, "/rfi-cn.atom")
    etag = full.headers["etag"]
    with Connection(site.address) as connection:
        connection.send(request_bytes("/rfi-cn.atom", headers={"If-None-Match": if_none_match.format(etag=etag)}))
        response = connection.response()
        # a 304 has no body: the next response on the connection must start right after its head
        connection.send(request_bytes("/feeds.opml"))
        after = connection.response()
    assert response.status == 304
    assert response.body == b""
    assert "content-length" not in response.headers
    for name in ("etag", "last-modified", "cache-control", "vary"):
        assert response.headers[name] == full.headers[name]
    assert after.status == 200
    assert after.body == OPML


def test_if_none_match_on_head_gives_304(site: Site) -> None:
    response = get(site, "/rfi-cn.atom", {"If-None-Match": plain_etag(site)}, method="HEAD")
    assert response.status == 304
    assert response.body == b""


@pytest.mark.parametrize("if_none_match", ['"other"', 'W/"other"', '""', "garbage"])
def test_a_different_etag_gives_200(site: Site, if_none_match: str) -> None:
    response = get(site, "/rfi-cn.atom", {"If-None-Match": if_none_match})
    assert response.status == 200
    assert response.body == ATOM


def test_the_gzip_etag_does_not_match_the_plain_representation(site: Site) -> None:
    response = get(site, "/rfi-cn.atom", {"If-None-Match": gzip_etag(site)})
    assert response.status == 200
    assert response.body == ATOM


@pytest.mark.parametrize(
    ("if_modified_since", "status"),
    [
        (LAST_MODIFIED, 304),
        (formatdate(MTIME + 1, usegmt=True), 304),
        (formatdate(MTIME + 3600, usegmt=True), 304),
        ("Thursday, 15-Jan-26 12:00:00 GMT", 304),  # RFC 850 form
        (formatdate(MTIME - 1, usegmt=True), 200),
        (formatdate(MTIME - 86400, usegmt=True), 200),
        ("garbage", 200),
        ("", 200),
    ],
)
def test_if_modified_since(site: Site, if_modified_since: str, status: int) -> None:
    response = get(site, "/rfi-cn.atom", {"If-Modified-Since": if_modified_since})
    assert response.status == status
    assert response.body == (b"" if status == 304 else ATOM)
    assert response.headers["last-modified"] == LAST_MODIFIED


def test_if_none_match_takes_precedence_over_if_modified_since(site: Site) -> None:
    etag = plain_etag(site)
    mismatch = get(site, "/rfi-cn.atom", {"If-None-Match": '"other"', "If-Modified-Since": LAST_MODIFIED})
    assert mismatch.status == 200
    assert mismatch.body == ATOM
    earlier = formatdate(MTIME - 86400, usegmt=True)
    match = get(site, "/rfi-cn.atom", {"If-None-Match": etag, "If-Modified-Since": earlier})
    assert match.status == 304


# --- gzip ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("accept_encoding", ["gzip", "gzip, deflate, br", "deflate;q=1, GZIP;q=0.5", "x-gzip", "*"])
def test_accept_encoding_gzip_serves_the_gz_sibling(site: Site, accept_encoding: str) -> None:
    plain = get(site, "/rfi-cn.atom")
    response = get(site, "/rfi-cn.atom", {"Accept-Encoding": accept_encoding})
    assert response.status == 200
    assert response.body == FILES["rfi-cn.atom.gz"]
    assert gzip.decompress(response.body) == ATOM
    h = response.headers
    assert h["content-encoding"] == "gzip"
    assert h["content-length"] == str(len(FILES["rfi-cn.atom.gz"]))
    assert h["content-type"] == "application/atom+xml; charset=utf-8"
    assert h["cache-control"] == f"max-age={max_age('rfi-cn.atom')}"
    assert h["vary"] == "Accept-Encoding"
    assert STRONG_ETAG.match(h["etag"].replace("-gz", "")), h["etag"]
    assert h["etag"] != plain.headers["etag"]


@pytest.mark.parametrize("accept_encoding", ["gzip;q=0", "identity", "deflate, br", "gzip;q=0.000"])
def test_gzip_refused_gives_the_plain_file(site: Site, accept_encoding: str) -> None:
    response = get(site, "/rfi-cn.atom", {"Accept-Encoding": accept_encoding})
    assert response.status == 200
    assert response.body == ATOM
    assert "content-encoding" not in response.headers


def test_without_a_gz_sibling_gzip_clients_get_the_plain_file(site: Site) -> None:
    response = get(site, "/rfi-cn.rss", {"Accept-Encoding": "gzip"})
    assert response.status == 200
    assert response.body == RSS
    assert "content-encoding" not in response.headers
    assert response.headers["vary"] == "Accept-Encoding"


def test_the_gzip_etag_revalidates_the_gzip_representation(site: Site) -> None:
    etag = gzip_etag(site)
    response = get(site, "/rfi-cn.atom", {"Accept-Encoding": "gzip", "If-None-Match": etag})
    assert response.status == 304
    assert response.headers["etag"] == etag


# --- the cache follows the files -------------------------------------------------------------------------------------


def test_a_rewritten_file_is_served_fresh(site: Site) -> None:
    first = get(site, "/rfi-cn.atom")
    path = site.root / "rfi-cn.atom"
    new = ATOM.replace(b"RFI", b"XYZ")  # same size: only the mtime tells the cache
    assert len(new) == len(ATOM)
    path.write_bytes(new)
    os.utime(path, (MTIME + 60, MTIME + 60))
    second = get(site, "/rfi-cn.atom")
    assert second.body == new
    assert second.headers["etag"] != first.headers["etag"]
    assert second.headers["last-modified"] == formatdate(MTIME + 60, usegmt=True)
    stale = get(site, "/rfi-cn.atom", {"If-None-Match": first.headers["etag"]})
    assert stale.status == 200
    assert stale.body == new


def test_a_file_replaced_with_the_same_size_and_mtime_is_served_fresh(site: Site) -> None:
    """publish.py renames a new file over the old one: the inode changes even if size and mtime do not."""
    first = get(site, "/rfi-cn.json")
    replacement = site.root / ".rfi-cn.json.new.tmp"
    new = JSON.replace(b"RFI", b"XYZ")
    replacement.write_bytes(new)
    os.utime(replacement, (MTIME, MTIME))
    replacement.replace(site.root / "rfi-cn.json")
    second = get(site, "/rfi-cn.json")
    assert second.body == new
    assert second.headers["etag"] != first.headers["etag"]


def test_a_removed_file_is_404_and_served_again_once_back(site: Site) -> None:
    assert get(site, "/feeds.opml").status == 200
    path = site.root / "feeds.opml"
    path.unlink()
    assert get(site, "/feeds.opml").status == 404
    path.write_bytes(OPML)
    back = get(site, "/feeds.opml")
    assert back.status == 200
    assert back.body == OPML


# --- refused paths ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "/missing.atom",
        "/sub",
        "/.rfi-cn.atom.x1y2.tmp",
        "/sub/.hidden.atom",
        "/%2Erfi-cn.atom.x1y2.tmp",
        "/../secret.atom",
        "/%2e%2e/secret.atom",
        "/%2E%2E%2Fsecret.atom",
        "/a/..%2f..%2fsecret.atom",
        "/sub/..%2F..%2Fsecret.atom",
        "/sub/../rfi-cn.atom",
        "/./rfi-cn.atom",
        "/%2e/rfi-cn.atom",
        "/..%5csecret.atom",
        "/..\\secret.atom",
        "/sub\\..\\..\\secret.atom",
        "/%5c..%5csecret.atom",
        "//etc/passwd",
        "/sub//feed.json",
        "/%00",
        "/rfi-cn.atom%00",
        "/rfi-cn.atom%00.txt",
        "/%ff",
        "/%c3%28.atom",
        "/%e4%b8.atom",
        "/outside.atom",
        "/outdir/secret.atom",
        "*",
    ],
)
def test_refused_or_missing_paths_are_404(site: Site, target: str) -> None:
    with Connection(site.address) as connection:
        connection.send(request_bytes(target))
        response = connection.response()
        connection.send(request_bytes("/rfi-cn.rss"))  # a 404 keeps the connection
        after = connection.response()
    assert response.status == 404
    assert response.body == b"404 Not Found\n"
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert SECRET not in response.body
    assert (after.status, after.body) == (200, RSS)


@pytest.mark.parametrize(
    "target",
    ["rfi-cn.atom", "secret.atom", "../secret.atom", "/rfi-cn\tatom", "/中文.atom", "/a\x7fb", "/a\x00b"],
)
def test_a_target_llhttp_cannot_read_is_400_and_closes(site: Site, target: str) -> None:
    """Not origin-form, absolute-form or *, or raw bytes a target may not hold: llhttp stops at the target, so
    nothing after it was read and the connection cannot go on (it was 404 and kept open before llhttp)."""
    data = f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode() + request_bytes("/rfi-cn.rss")
    response, closed = raw_closing(site, data)
    assert response.status == 400
    assert response.body == b"400 Bad Request\n"
    assert SECRET not in response.body
    assert closed


def test_head_of_a_missing_file_is_404_without_body(site: Site) -> None:
    with Connection(site.address) as connection:
        connection.send(request_bytes("/missing.atom", "HEAD"))
        response = connection.response(head=True)
        connection.send(request_bytes("/rfi-cn.rss"))
        after = connection.response()
    assert response.status == 404
    assert after.status == 200
    assert after.body == RSS


# --- refused requests ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "PATCH", "get", "BREW", "M-SEARCH"])
def test_other_methods_are_405_and_close(site: Site, method: str) -> None:
    response, closed = raw_closing(site, request_bytes("/rfi-cn.atom", method))
    assert response.status == 405
    assert response.headers["allow"] == "GET, HEAD"
    assert response.headers["connection"] == "close"
    assert closed


@pytest.mark.parametrize(
    "data",
    [
        b"GARBAGE\r\n\r\n",
        b"GET /\r\n\r\n",
        b"GET / HTTP/1.1 extra\r\n\r\n",
        b"GET  / HTTP/1.1\r\n\r\n",
        b"GET / FTP/1.1\r\n\r\n",
        b"GET / http/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nNoColon\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
        b"GET / HTTP/1.1\r\n: no name\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
        b"GET / HTTP/1.1\r\n folded: x\r\n\r\n",
    ],
)
def test_malformed_requests_are_400_and_close(site: Site, data: bytes) -> None:
    response, closed = raw_closing(site, data)
    assert response.status == 400
    assert response.body == b"400 Bad Request\n"
    assert closed


@pytest.mark.parametrize("version", ["HTTP/2.0", "HTTP/1.2", "HTTP/0.9", "HTTP/1.9", "HTTP/3.0"])
def test_unsupported_http_versions_are_505(site: Site, version: str) -> None:
    response, closed = raw_closing(site, request_bytes("/rfi-cn.atom", version=version))
    assert response.status == 505
    assert closed


def test_a_5000_byte_target_is_414(site: Site) -> None:
    response, closed = raw_closing(site, request_bytes("/" + "a" * 5000))
    assert response.status == 414
    assert closed
    # the limit is 4 KiB: a target of exactly 4096 bytes is still looked up
    response = raw(site, request_bytes("/" + "a" * 4095))
    assert response.status == 404


def test_20_kb_of_headers_is_431(site: Site) -> None:
    headers = {f"X-Pad-{i}": "v" * 5000 for i in range(4)}
    response, closed = raw_closing(site, request_bytes("/rfi-cn.atom", headers=headers))
    assert response.status == 431
    assert closed


def test_an_unterminated_head_over_the_limit_is_431_at_once(site: Site) -> None:
    with Connection(site.address) as connection:
        connection.send(b"GET /rfi-cn.atom HTTP/1.1\r\nX-Pad: " + b"v" * 17_000)
        response = connection.response()
        assert response.status == 431
        assert connection.closed_by_peer()


def test_more_than_100_header_lines_is_431(site: Site) -> None:
    many = {f"X-H{i}": "1" for i in range(100)}  # + Host = 101
    response = raw(site, request_bytes("/rfi-cn.atom", headers=many))
    assert response.status == 431
    enough = {f"X-H{i}": "1" for i in range(99)}  # + Host = 100
    response = raw(site, request_bytes("/rfi-cn.atom", headers=enough))
    assert response.status == 200


@pytest.mark.parametrize(
    "data",
    [
        b"GET /rfi-cn.atom HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
        b"GET /rfi-cn.atom HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"GET /rfi-cn.atom HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"GET /rfi-cn.atom HTTP/1.1\r\nHost: x\r\nContent-Length: 00\r\n\r\n",
    ],
)
def test_a_request_with_a_body_is_refused_and_closed(site: Site, data: bytes) -> None:
    response, closed = raw_closing(site, data)
    assert response.status == 413
    assert response.headers["connection"] == "close"
    assert closed


def test_content_length_zero_is_accepted(site: Site) -> None:
    response = raw(site, request_bytes("/rfi-cn.rss", headers={"Content-Length": "0"}))
    assert response.status == 200
    assert response.body == RSS


# --- the request parser (llhttp) and its limits ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "head",
    [
        # request smuggling: a body's length given twice, or two ways, or not as digits
        b"GET /rfi-cn.atom HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"GET /rfi-cn.atom HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n",
        b"GET /rfi-cn.atom HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n",
        b"GET /rfi-cn.atom HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 60\r\n\r\n",
        b"GET /rfi-cn.atom HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        b"GET /rfi-cn.atom HTTP/1.1\r\nHost: x\r\nContent-Length: 0x0\r\n\r\n",
        b"GET /rfi-cn.atom HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        # line ends other than CRLF, obs-fold, white space in or before a name, control characters in a value
        b"GET /rfi-cn.atom HTTP/1.1\r\nHost: x\nContent-Length: 60\r\n\r\n",
        b"GET /rfi-cn.atom HTTP/1.1\nHost: x\r\n\r\n",
        b"GET /rfi-cn.atom HTTP/1.1\r\nHost: x\rContent-Length: 60\r\n\r\n",
        b"GET /rfi-cn.atom HTTP/1.1\r\nHost: x\r\nX-A: b\r\n c\r\n\r\n",
        b"GET /rfi-cn.atom HTTP/1.1\r\nHost: x\r\nX-A: b\r\n\tc\r\n\r\n",
        b"GET /rfi-cn.atom HTTP/1.1\r\nHost: x\r\nX-A\t: b\r\n\r\n",
        b"GET /rfi-cn.atom HTTP/1.1\r\nHost: x\r\nContent-Length : 60\r\n\r\n",
        b"GET /rfi-cn.atom HTTP/1.1\r\nHost: x\r\nX-A: b\x00c\r\n\r\n",
        b"GET /rfi-cn.atom HTTP/1.1\r\nHost: x\r\nX-A: b\x7fc\r\n\r\n",
        # the request line is METHOD SP target SP HTTP/1.x CRLF and nothing else
        b"GET /rfi-cn.atom  HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET\t/rfi-cn.atom HTTP/1.1\r\nHost: x\r\n\r\n",
        b" GET /rfi-cn.atom HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /rfi-cn.atom HTTP/1.1 \r\nHost: x\r\n\r\n",
        b"GET /rfi-cn.atom\r\nHost: x\r\n\r\n",
        b"GET /rfi-cn.atom RTSP/1.0\r\nHost: x\r\n\r\n",
        b"GET /rfi-cn.atom ICE/1.0\r\nHost: x\r\n\r\n",
        b"G(T /rfi-cn.atom HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\r\n\r\n",
        b"GET /rfi-cn.atom HTTP/1.1\r\n\r\n",  # HTTP/1.1 without Host
    ],
)
def test_a_refused_head_is_400_and_nothing_after_it_is_answered(site: Site, head: bytes) -> None:
    response, closed = raw_closing(site, head + request_bytes("/rfi-cn.rss"))
    assert response.status == 400
    assert response.body == b"400 Bad Request\n"
    assert closed  # and no second response: closed_by_peer reads EOF, not a status line


def test_the_http2_preface_is_505(site: Site) -> None:
    response, closed = raw_closing(site, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
    assert response.status == 505
    assert closed


def test_connect_is_405_and_closes(site: Site) -> None:
    response, closed = raw_closing(site, b"CONNECT 127.0.0.1:443 HTTP/1.1\r\nHost: 127.0.0.1:443\r\n\r\nGET / HT")
    assert response.status == 405
    assert closed


def test_an_upgrade_request_is_answered_as_a_get_and_the_connection_goes_on(site: Site) -> None:
    upgrade = request_bytes("/rfi-cn.atom", headers={"Connection": "Upgrade", "Upgrade": "websocket"})
    with Connection(site.address) as connection:
        connection.send(upgrade + request_bytes("/rfi-cn.rss"))
        first = connection.response()
        second = connection.response()
    assert (first.status, first.body) == (200, ATOM)
    assert "upgrade" not in first.headers
    assert (second.status, second.body) == (200, RSS)


def send_in_pieces(connection: Connection, data: bytes, sizes: list[int]) -> None:
    """Writes of the given sizes in turn, each its own TCP segment, so the server reads the data in pieces."""
    connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    start, turn = 0, 0
    while start < len(data):
        size = sizes[turn % len(sizes)]
        connection.send(data[start : start + size])
        start, turn = start + size, turn + 1
        time.sleep(0.001)


def test_a_request_sent_a_byte_at_a_time_is_answered(site: Site) -> None:
    headers = {"Accept-Encoding": "gzip", "If-None-Match": '"other"', "X-Pad": "v" * 40}
    with Connection(site.address) as connection:
        send_in_pieces(connection, request_bytes("/rfi-cn.atom", headers=headers), [1])
        response = connection.response()
        connection.send(request_bytes("/rfi-cn.rss"))
        after = connection.response()
    assert (response.status, response.body) == (200, FILES["rfi-cn.atom.gz"])
    assert (after.status, after.body) == (200, RSS)


def test_pipelined_requests_cut_anywhere_are_answered_in_order(site: Site) -> None:
    etag = plain_etag(site)
    data = (
        request_bytes("/rfi-cn.atom", headers={"If-None-Match": etag})
        + request_bytes("/missing.atom")
        + request_bytes("/rfi-cn.json", "HEAD")
        + request_bytes("/feeds.opml", headers={"Connection": "close"})
    )
    with Connection(site.address) as connection:
        send_in_pieces(connection, data, [7, 1, 30, 2, 13, 3, 61])
        answers = [connection.response(), connection.response(), connection.response(head=True), connection.response()]
        assert connection.closed_by_peer()
    assert [a.status for a in answers] == [304, 404, 200, 200]
    assert answers[2].headers["content-length"] == str(len(JSON))
    assert answers[3].body == OPML


def test_a_head_of_exactly_16_kib_is_read_and_one_byte_more_is_431(site: Site) -> None:
    def head(pad: int) -> bytes:
        return request_bytes("/rfi-cn.atom", headers={"X-Pad": "v" * pad})

    pad = serve.MAX_HEAD_BYTES - head(0).index(b"\r\n\r\n")
    assert head(pad).index(b"\r\n\r\n") == serve.MAX_HEAD_BYTES == 16 * 1024
    response = raw(site, head(pad))
    assert (response.status, response.body) == (200, ATOM)
    response, closed = raw_closing(site, head(pad + 1))
    assert response.status == 431
    assert closed


def test_a_target_of_4097_bytes_is_414(site: Site) -> None:
    response, closed = raw_closing(site, request_bytes("/" + "a" * 4096))
    assert response.status == 414
    assert closed


def test_header_values_lose_the_white_space_around_them_and_repeats_are_joined(site: Site) -> None:
    etag = plain_etag(site).encode()
    padded = b"GET /rfi-cn.atom HTTP/1.1\r\nHost: x\r\nIf-None-Match: \t " + etag + b" \t \r\n\r\n"
    assert raw(site, padded).status == 304
    repeated = b'GET /rfi-cn.atom HTTP/1.1\r\nHost: x\r\nif-none-match: "a"\r\nIF-NONE-MATCH: ' + etag + b"\r\n\r\n"
    assert raw(site, repeated).status == 304


def test_one_reader_reads_the_heads_of_a_connection_in_turn() -> None:
    reader = HeadReader()
    upgrade = b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
    first = reader.read(upgrade)
    assert isinstance(first, Request)
    assert (first.method, first.target, first.version, first.keep_alive) == ("GET", "/a", "1.1", True)
    assert first.headers == {"host": "x", "connection": "Upgrade", "upgrade": "h2c"}
    assert reader.read(b"HEAD /b?c=%20d HTTP/1.0\r\nX-A: 1 \r\nx-a: 2\r\n\r\n") == Request(
        "HEAD", "/b?c=%20d", "1.0", {"x-a": "1, 2"}, keep_alive=False
    )
    assert reader.read(b"GET /c HTTP/1.0\r\nConnection: keep-alive\r\n\r\n") == Request(
        "GET", "/c", "1.0", {"connection": "keep-alive"}, keep_alive=True
    )
    assert reader.read(b"GET /d HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, close\r\n\r\n") == Request(
        "GET", "/d", "1.1", {"host": "x", "connection": "keep-alive, close"}, keep_alive=False
    )
    assert reader.read(b"GET /e HTTP/1.2\r\n\r\n") == 505
    assert reader.read(b"GET /f HTTP/1.1\r\nHost: x\r\n\r\n") == Request("GET", "/f", "1.1", {"host": "x"}, True)


# --- connections -----------------------------------------------------------------------------------------------------


def test_keep_alive_two_requests_on_one_connection(site: Site) -> None:
    with Connection(site.address) as connection:
        connection.send(request_bytes("/rfi-cn.atom"))
        first = connection.response()
        connection.send(request_bytes("/rfi-cn.json"))
        second = connection.response()
    assert (first.status, first.body) == (200, ATOM)
    assert (second.status, second.body) == (200, JSON)


def test_http_client_reuses_one_connection(site: Site) -> None:
    client = http.client.HTTPConnection(site.host, site.port, timeout=TIMEOUT)
    try:
        client.request("GET", "/rfi-cn.atom")
        first = client.getresponse()
        assert first.read() == ATOM
        sock = client.sock
        client.request("GET", "/rfi-cn.rss")
        second = client.getresponse()
        assert second.read() == RSS
        assert client.sock is sock
    finally:
        client.close()


def test_pipelined_requests_are_answered_in_order(site: Site) -> None:
    with Connection(site.address) as connection:
        connection.send(
            request_bytes("/rfi-cn.atom")
            + request_bytes("/missing.atom")
            + request_bytes("/rfi-cn.rss", "HEAD")
            + request_bytes("/rfi-cn.rss")
        )
        answers = [
            connection.response(),
            connection.response(),
            connection.response(head=True),
            connection.response(),
        ]
    assert [(a.status, a.body) for a in answers] == [(200, ATOM), (404, b"404 Not Found\n"), (200, b""), (200, RSS)]


def test_http_1_0_closes_after_the_response(site: Site) -> None:
    response, closed = raw_closing(site, request_bytes("/rfi-cn.atom", version="HTTP/1.0"))
    assert response.status == 200
    assert response.body == ATOM
    assert response.headers["connection"] == "close"
    assert closed


def test_http_1_0_keep_alive_keeps_the_connection(site: Site) -> None:
    keep = {"Connection": "keep-alive"}
    with Connection(site.address) as connection:
        connection.send(request_bytes("/rfi-cn.atom", headers=keep, version="HTTP/1.0"))
        first = connection.response()
        connection.send(request_bytes("/rfi-cn.rss", version="HTTP/1.0"))
        second = connection.response()
        assert connection.closed_by_peer()
    assert (first.status, first.body) == (200, ATOM)
    assert first.headers.get("connection") != "close"
    assert (second.status, second.body) == (200, RSS)


@pytest.mark.parametrize("connection_header", ["close", "Close", "keep-alive, close"])
def test_connection_close_closes(site: Site, connection_header: str) -> None:
    response, closed = raw_closing(site, request_bytes("/rfi-cn.atom", headers={"Connection": connection_header}))
    assert response.status == 200
    assert response.body == ATOM
    assert response.headers["connection"] == "close"
    assert closed


def test_idle_connections_do_not_delay_a_new_request(site: Site) -> None:
    idle: list[socket.socket] = []
    try:
        for _ in range(200):
            idle.append(socket.create_connection(site.address, timeout=TIMEOUT))
        deadline = time.monotonic() + TIMEOUT
        while len(site.server.connections) < 200 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(site.server.connections) >= 200
        started = time.monotonic()
        response = get(site, "/rfi-cn.atom")
        elapsed = time.monotonic() - started
    finally:
        for sock in idle:
            sock.close()
    assert response.status == 200
    assert response.body == ATOM
    assert elapsed < 1.0


def test_an_incomplete_head_times_out_with_408(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(serve, "HEAD_TIMEOUT", 0.3)
    with Connection(site.address) as connection:
        connection.send(b"GET /rfi-cn.atom HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        response = connection.response()
        assert connection.closed_by_peer()
    assert response.status == 408
    assert 0.2 < time.monotonic() - started < 2.0


def test_a_silent_connection_is_closed_without_a_response(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(serve, "HEAD_TIMEOUT", 0.3)
    with Connection(site.address) as connection:
        assert connection.closed_by_peer()


def test_a_busy_keep_alive_connection_is_not_cut_by_the_head_timeout(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(serve, "HEAD_TIMEOUT", 0.6)
    monkeypatch.setattr(serve, "IDLE_TIMEOUT", 5.0)
    with Connection(site.address) as connection:
        for _ in range(4):  # one complete request every 0.3 s: never idle, never a slow head
            connection.send(request_bytes("/rfi-cn.rss"))
            assert connection.response().body == RSS
            time.sleep(0.3)


def test_a_trickled_head_still_times_out(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(serve, "HEAD_TIMEOUT", 0.5)
    head = b"GET /rfi-cn.atom HTTP/1.1\r\nX-Slow: " + b"a" * 100
    answered, ended = b"", False
    with Connection(site.address, timeout=0.1) as connection:
        started = time.monotonic()
        for byte in head:  # one byte every 0.1 s, never the end of the head
            if time.monotonic() - started > 1.5:
                break
            try:
                connection.sock.sendall(bytes([byte]))
                chunk = connection.sock.recv(100)
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                ended = True
                break
            answered += chunk
            if not chunk or answered.endswith(b"\n408 Request Timeout\n"):
                ended = True
                break
        elapsed = time.monotonic() - started
    assert ended, f"still open after {elapsed:.1f}s of a head trickled byte by byte"
    assert answered == b"" or answered.startswith(b"HTTP/1.1 408 "), answered


def test_pipelined_requests_a_client_never_reads_do_not_pile_up_in_memory(site: Site) -> None:
    big = os.urandom(256 * 1024)
    (site.root / "big.txt").write_bytes(big)

    async def buffered() -> int:
        return sum(
            c._transport.get_write_buffer_size()
            for c in site.server.connections
            if c._transport is not None and not c._transport.is_closing()
        )

    with Connection(site.address) as connection:
        connection.send(request_bytes("/big.txt") * 200)  # 6 KB of requests asking for 51 MB
        deadline = time.monotonic() + 1.0
        largest = 0
        while time.monotonic() < deadline and largest < 8 * 1024 * 1024:
            time.sleep(0.05)
            largest = max(largest, site.run(buffered()))
    assert largest < 8 * 1024 * 1024, f"{largest} bytes buffered for a client that reads nothing"


# --- pure helpers ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/", "index.html"),
        ("/rfi-cn.atom", "rfi-cn.atom"),
        ("/sub/", "sub/index.html"),
        ("/sub/feed.json", "sub/feed.json"),
        ("/rfi-cn.atom?x=1", "rfi-cn.atom"),
        ("/rfi-cn.atom#top", "rfi-cn.atom"),
        ("/?a=b/../c", "index.html"),
        ("/%E4%B8%AD%E6%96%87.atom", "中文.atom"),
        ("/a%20b.atom", "a b.atom"),
        ("/sub%2Ffeed.json", "sub/feed.json"),
        ("", None),
        ("rfi-cn.atom", None),
        ("*", None),
        ("http://127.0.0.1/rfi-cn.atom", None),
        ("/../x", None),
        ("/%2e%2e/x", None),
        ("/%2E%2E%2Fsecret", None),
        ("/a/..%2f..%2fsecret", None),
        ("/..%5csecret", None),
        ("/a\\b", None),
        ("/..\\secret", None),
        ("//etc/passwd", None),
        ("/sub//x", None),
        ("/%00", None),
        ("/a%00b", None),
        ("/%ff", None),
        ("/%c3%28", None),
        ("/.hidden", None),
        ("/sub/.hidden", None),
        ("/./x", None),
        ("/sub/.", None),
        ("/%2e", None),
    ],
)
def test_safe_relative_path(target: str, expected: str | None) -> None:
    assert safe_relative_path(target) == expected


@pytest.mark.parametrize(
    ("accept_encoding", "expected"),
    [
        ("gzip", True),
        ("GZIP", True),
        ("x-gzip", True),
        ("*", True),
        ("deflate, gzip", True),
        ("gzip;q=0.5", True),
        ("gzip; q=1.0", True),
        ("br;q=1, gzip;q=0.001", True),
        ("gzip;q=0", False),
        ("gzip;q=0.0", False),
        ("gzip;Q=0", False),
        ("gzip;q=abc", False),
        ("", False),
        ("identity", False),
        ("deflate, br", False),
        ("gzipx", False),
        ("br, gzip;q=0", False),
        ("*;q=0, gzip", True),
        ("*, gzip;q=0", False),
    ],
)
def test_accepts_gzip(accept_encoding: str, expected: bool) -> None:
    assert accepts_gzip(accept_encoding) is expected


REPRESENTATION = Representation(stamp=(0, 0, 0, 0), body=b"", etag='"abc"', last_modified=MTIME, headers=b"")


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, False),
        ({"if-none-match": '"abc"'}, True),
        ({"if-none-match": '"x", "abc"'}, True),
        ({"if-none-match": ' "x" ,"abc" '}, True),
        ({"if-none-match": 'W/"abc"'}, True),
        ({"if-none-match": "*"}, True),
        ({"if-none-match": '"abcd"'}, False),
        ({"if-none-match": '"ab"'}, False),
        ({"if-none-match": "abc"}, False),
        ({"if-none-match": ""}, False),
        ({"if-modified-since": LAST_MODIFIED}, True),
        ({"if-modified-since": formatdate(MTIME + 1, usegmt=True)}, True),
        ({"if-modified-since": formatdate(MTIME + 3600, usegmt=True)}, True),
        ({"if-modified-since": "Thu, 15 Jan 2026 13:00:00 +0100"}, True),
        ({"if-modified-since": "Thursday, 15-Jan-26 12:00:00 GMT"}, True),
        ({"if-modified-since": formatdate(MTIME - 1, usegmt=True)}, False),
        ({"if-modified-since": "garbage"}, False),
        ({"if-modified-since": ""}, False),
        ({"if-modified-since": "Thu, 15 Jan 2026 12:00:00 -0000"}, True),  # HTTP dates are GMT, however spelled
        ({"if-none-match": '"x"', "if-modified-since": LAST_MODIFIED}, False),
        ({"if-none-match": '"abc"', "if-modified-since": formatdate(MTIME - 1, usegmt=True)}, True),
        ({"if-modified-since": "Thu Jan 15 12:00:00 2026"}, True),
    ],
)
def test_not_modified(headers: dict[str, str], expected: bool) -> None:
    assert not_modified(REPRESENTATION, headers) is expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("rfi-cn.atom", "application/atom+xml; charset=utf-8"),
        ("sub/rfi-cn.rss", "application/rss+xml; charset=utf-8"),
        ("rfi-cn.json", "application/feed+json"),
        ("index.html", "text/html; charset=utf-8"),
        ("feeds.opml", "text/x-opml; charset=utf-8"),
        ("sitemap.xml", "application/xml; charset=utf-8"),
        ("robots.txt", "text/plain; charset=utf-8"),
        ("rfi-cn.atom.gz", "application/octet-stream"),
        ("README", "application/octet-stream"),
        ("archive.tar", "application/octet-stream"),
    ],
)
def test_content_type(name: str, expected: str) -> None:
    assert content_type(name) == expected
