"""The value types config.yaml's fields use: durations ('15m'), paths resolved against the config's folder,
names, hosts, absolute URLs and origins, each checked with a message that says what is expected."""

from __future__ import annotations

import contextlib
import ipaddress
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, Field, ValidationInfo

_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_NAME = r"^[a-z0-9][a-z0-9_-]{0,62}$"


def parse_duration(value: object) -> timedelta:
    """'30s', '15m', '1h', '1d' → timedelta; anything else (a bare YAML number too) is refused."""
    if not isinstance(value, str):
        raise ValueError(f"must be a string such as '30s', '15m' or '1h', not {value!r}")
    match = _DURATION.match(value)
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"invalid duration {value!r} (use a positive number and s, m, h or d: 30s, 15m, 1h)")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def _resolve_path(value: Path, info: ValidationInfo) -> Path:
    root = Path((info.context or {}).get("root", Path.cwd()))
    return (root / value.expanduser()).resolve()


def _check_base_url(value: str) -> str:
    value = _check_absolute_url(value)
    return value if value.endswith("/") else value + "/"


def _check_absolute_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"must be an absolute http(s) URL, not {value!r}")
    return value


def _check_origin(value: str) -> str:
    parts = urlsplit(_check_absolute_url(value))
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"must be scheme://host[:port] only, not {value!r}")
    return value.rstrip("/")


def _check_host(value: str) -> str:
    host = value.strip().lower()
    if not re.fullmatch(r"[a-z0-9.-]+", host) or host.startswith(".") or ".." in host:
        raise ValueError(f"not a host name: {value!r}")
    return host


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
ConfigPath = Annotated[Path, AfterValidator(_resolve_path)]
Name = Annotated[str, Field(pattern=_NAME)]
Host = Annotated[str, AfterValidator(_check_host)]
AbsoluteUrl = Annotated[str, AfterValidator(_check_absolute_url)]
Origin = Annotated[str, AfterValidator(_check_origin)]


def _check_listen_host(value: str) -> str:
    """An IP address or a host name to listen on (no scheme, port or path)."""
    with contextlib.suppress(ValueError):
        return str(ipaddress.ip_address(value))
    return _check_host(value)


ListenHost = Annotated[str, AfterValidator(_check_listen_host)]
BaseUrl = Annotated[str, AfterValidator(_check_base_url)]
