"""A request head read strictly, and what its headers ask of the file it names: whether the connection stays
open, whether gzip is acceptable, whether the client's copy is still current (a conditional GET)."""

from __future__ import annotations

from datetime import UTC
from email.utils import parsedate_to_datetime

from feeder.served_files import Representation

MAX_TARGET_BYTES = 4 * 1024
MAX_HEADERS = 100


def parse_head(head: bytes) -> tuple[str, str, str, dict[str, str]] | int:
    """Request line and headers, or the status code that refuses them."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        return 400
    method, target, version = parts
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        return 505 if version.startswith("HTTP/") else 400
    if len(target) > MAX_TARGET_BYTES:
        return 414
    if len(lines) - 1 > MAX_HEADERS:
        return 431
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip() or any(c in name for c in " \t"):
            return 400
        key = name.lower()
        headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    return method, target, version, headers


def keeps_alive(version: str, headers: dict[str, str]) -> bool:
    """Whether the connection stays open after this request: in HTTP/1.0 only when asked, in 1.1 unless not."""
    tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
    if version == "HTTP/1.0":
        return "keep-alive" in tokens
    return "close" not in tokens


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
