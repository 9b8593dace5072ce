"""A request head read by llhttp, and what its headers ask of the file it names: whether gzip is acceptable,
whether the client's copy is still current (a conditional GET).

llhttp (the parser of Node.js and uvicorn, through httptools; this is the only module that imports it) reads
the request line and the headers in its strict mode: CRLF line ends only (no bare CR or LF), no obs-fold, no
white space in or before a header name, no control character in a value, no Content-Length next to
Transfer-Encoding and no second Content-Length. serve.py cuts the byte stream at the blank line that ends a
head, so the 16 KiB limit holds before any byte is parsed, and each head gets a parser of its own: nothing of
one request carries over to the next. What llhttp allows and this server does not is refused here: more than
one space in the request line, a request line without a version or with RTSP/ICE for HTTP, a version other
than 1.0 and 1.1, the target and header limits, a method other than GET and HEAD, any body, HTTP/1.1 without
Host.
"""

from __future__ import annotations

import re
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import NamedTuple

import httptools

from feeder.served_files import Representation

MAX_TARGET_BYTES = 4 * 1024
MAX_HEADERS = 100
_METHOD = re.compile(rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+ ")  # a token and the space after it (RFC 9110 5.6.2)


class Request(NamedTuple):
    """A head this server answers: GET or HEAD of a target, HTTP/1.0 or 1.1, without a body."""

    method: str
    target: str
    version: str  # "1.0" or "1.1"
    headers: dict[str, str]  # names in lower case; a repeated header's values joined with ", "
    keep_alive: bool


class HeadReader:
    """Reads a connection's request heads with llhttp, one head at a time, each with a new parser."""

    def __init__(self) -> None:
        self._head = b""
        self._parser = httptools.HttpRequestParser(self)
        self._url = b""
        self._headers: dict[str, str] = {}
        self._count = 0
        self._outcome: Request | int | None = None

    def read(self, head: bytes) -> Request | int:
        """The request a head makes (request line and headers up to the blank line, included), or the
        status code that refuses it: 400, 405, 413, 414, 431 or 505."""
        self._head = head
        self._parser = httptools.HttpRequestParser(self)
        self._url = b""
        self._headers = {}
        self._count = 0
        self._outcome = None
        try:
            self._parser.feed_data(head)
        except httptools.HttpParserUpgrade:
            pass  # Upgrade and CONNECT: llhttp stops after the head, which is answered like any other
        except httptools.HttpParserInvalidMethodError:
            # llhttp knows a fixed list of methods, in upper case only: any other token is a method all the
            # same, refused like every method but GET and HEAD
            return 405 if _METHOD.match(head) else 400
        except httptools.HttpParserCallbackError:
            raise  # a fault of this module's, not of the request
        except httptools.HttpParserError:
            return self._outcome if isinstance(self._outcome, int) else self._refusal()
        if self._outcome is None:  # llhttp waits for more (the HTTP/2 preface) or saw only empty lines
            return self._refusal()
        return self._outcome

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count += 1
        key = name.lower().decode("ascii")  # llhttp lets only token characters into a name
        text = value.rstrip(b" \t").decode("latin-1")  # llhttp drops the white space before a value, not after
        headers = self._headers
        headers[key] = f"{headers[key]}, {text}" if key in headers else text

    def on_headers_complete(self) -> None:
        parser = self._parser
        method, version = parser.get_method(), parser.get_http_version()
        self._outcome = self._fault(method, version) or self._request(method, version)

    def _fault(self, method: bytes, version: str) -> int:
        """The status code refusing the request line or the number of headers, 0 if none does."""
        if not self._exact_request_line(method, version):
            return 400
        if version not in ("1.0", "1.1"):
            return 505
        if len(self._url) > MAX_TARGET_BYTES:
            return 414
        if self._count > MAX_HEADERS:
            return 431
        return 0

    def _request(self, method: bytes, version: str) -> Request | int:
        if method not in (b"GET", b"HEAD"):
            return 405
        headers = self._headers
        if headers.get("content-length", "0") != "0" or "transfer-encoding" in headers:
            return 413
        if version == "1.1" and "host" not in headers:
            return 400
        keep_alive = self._parser.should_keep_alive()  # by Connection and version; llhttp forgets it once complete
        return Request(method.decode(), self._url.decode("latin-1"), version, headers, keep_alive)

    def _exact_request_line(self, method: bytes, version: str) -> bool:
        """Whether the head starts with exactly METHOD SP target SP HTTP/x.y CRLF, as llhttp read it: llhttp
        also takes several spaces, no version at all (HTTP/0.9) and RTSP/ or ICE/ for HTTP/."""
        return self._head.startswith(b"%s %s HTTP/%s\r\n" % (method, self._url, version.encode()))

    def _refusal(self) -> int:
        """505 for a well-formed request line naming another version (HTTP/1.2, the HTTP/2 preface), else 400."""
        version = self._parser.get_http_version()
        if version in ("0.0", "1.0", "1.1") or not self._exact_request_line(self._parser.get_method(), version):
            return 400
        return 505


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether gzip is acceptable: its own q-value if listed, else that of '*', else no."""
    weights: dict[str, float] = {}
    for item in accept_encoding.split(","):
        coding, _, params = item.partition(";")
        weights[coding.strip().lower()] = _q_value(params)
    for coding in ("gzip", "x-gzip", "*"):
        if coding in weights:
            return weights[coding] > 0
    return False


def _q_value(params: str) -> float:
    for param in params.split(";"):
        name, _, value = param.strip().partition("=")
        if name.lower() == "q":
            try:
                return float(value)
            except ValueError:
                return 0.0
    return 1.0


def not_modified(representation: Representation, headers: dict[str, str]) -> bool:
    """If-None-Match (weak comparison) wins; otherwise If-Modified-Since as 'not modified since'."""
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
        return "*" in tags or representation.etag in tags
    since = headers.get("if-modified-since")
    if since is None:
        return False
    try:
        moment = parsedate_to_datetime(since)
    except (TypeError, ValueError):
        return False
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # asctime and RFC 850 dates are GMT by definition
    return moment.timestamp() >= representation.last_modified
