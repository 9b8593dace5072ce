"""What a feed admin checks first, as test helpers: every Atom and RSS file of an output folder through the W3C
Feed Validation Service's own code (../shared/tools/validate-feeds), every JSON Feed against the JSON Feed 1.1
rules (https://www.jsonfeed.org/version/1.1/).

The validator lies beside the checkout, not in it. Without it a test skips and says so, except under CI, where
it must be there and a missing one fails the test.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
VALIDATOR = ROOT.parent / "shared" / "tools" / "validate-feeds"
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def validator() -> Path:
    """The validator's path; skips the test when it is not there (fails it under CI)."""
    if VALIDATOR.is_file():
        return VALIDATOR
    message = f"the W3C feed validator is not beside this checkout ({VALIDATOR} is missing)"
    if os.environ.get("CI"):
        pytest.fail(f"{message}; CI must run it")
    pytest.skip(message)


def validate_feeds(folder: Path, root_url: str) -> str:
    """Run the validator over a folder served at ``root_url``; fail on any error or warning. Returns its report."""
    feeds = sorted(p for p in folder.rglob("*") if p.suffix in (".atom", ".rss"))
    assert feeds, f"no feed in {folder}"
    result = subprocess.run(
        [sys.executable, str(validator()), "--root-url", root_url, str(folder)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=600,
        check=False,
    )
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    assert f"0 of {len(feeds)} feeds failed" in report, report
    return report


def check_json_feeds(folder: Path) -> int:
    """Check every ``*.json`` under a folder against the JSON Feed 1.1 rules; returns how many were checked."""
    documents = sorted(folder.rglob("*.json"))
    problems = [f"{path}: {problem}" for path in documents for problem in json_feed_problems(_load(path))]
    assert problems == [], "\n".join(problems)
    return len(documents)


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


_TOP: dict[str, type] = {
    "version": str,
    "title": str,
    "home_page_url": str,
    "feed_url": str,
    "description": str,
    "user_comment": str,
    "next_url": str,
    "icon": str,
    "favicon": str,
    "authors": list,
    "language": str,
    "expired": bool,
    "hubs": list,
    "items": list,
}
_ITEM: dict[str, type] = {
    "id": str,
    "url": str,
    "external_url": str,
    "title": str,
    "content_html": str,
    "content_text": str,
    "summary": str,
    "image": str,
    "banner_image": str,
    "date_published": str,
    "date_modified": str,
    "authors": list,
    "tags": list,
    "language": str,
    "attachments": list,
}
_URLS = {"home_page_url", "feed_url", "next_url", "icon", "favicon", "url", "external_url", "image", "banner_image"}


def json_feed_problems(feed: Any) -> list[str]:
    """Every way a document breaks the JSON Feed 1.1 rules (an empty list: none)."""
    if not isinstance(feed, dict):
        return ["the document is not an object"]
    problems = _fields(feed, _TOP, "feed")
    if feed.get("version") != "https://jsonfeed.org/version/1.1":
        problems.append(f"version is {feed.get('version')!r}")
    for key in ("title", "items"):
        if key not in feed:
            problems.append(f"feed: {key} is required")
    problems += _authors(feed.get("authors", []), "feed")
    for index, hub in enumerate(feed.get("hubs", [])):
        if not isinstance(hub, dict) or not isinstance(hub.get("type"), str) or not _is_url(hub.get("url")):
            problems.append(f"hubs[{index}]: needs a type and a url")
    ids: set[str] = set()
    for index, item in enumerate(feed.get("items", [])):
        problems += _item(item, f"items[{index}]", ids)
    return problems


def _item(item: Any, where: str, ids: set[str]) -> list[str]:
    if not isinstance(item, dict):
        return [f"{where}: not an object"]
    problems = _fields(item, _ITEM, where)
    if not isinstance(item.get("id"), str) or not item.get("id"):
        problems.append(f"{where}: id is required, a string")
    elif item["id"] in ids:
        problems.append(f"{where}: id {item['id']!r} is not unique")
    else:
        ids.add(item["id"])
    if "content_html" not in item and "content_text" not in item:
        problems.append(f"{where}: content_html or content_text is required")
    for key in ("date_published", "date_modified"):
        if key in item and not _RFC3339.match(str(item[key])):
            problems.append(f"{where}.{key}: not an RFC 3339 date: {item[key]!r}")
    if any(not isinstance(tag, str) for tag in item.get("tags", [])):
        problems.append(f"{where}.tags: every tag is a string")
    problems += _authors(item.get("authors", []), where)
    for index, attachment in enumerate(item.get("attachments", [])):
        if not isinstance(attachment, dict) or not _is_url(attachment.get("url")) or not attachment.get("mime_type"):
            problems.append(f"{where}.attachments[{index}]: needs a url and a mime_type")
    return problems


def _fields(found: dict[str, Any], known: dict[str, type], where: str) -> list[str]:
    problems = []
    for key, value in found.items():
        if key.startswith("_"):
            continue  # an extension
        if key not in known:
            problems.append(f"{where}: {key} is not a JSON Feed 1.1 key")
        elif not isinstance(value, known[key]):
            problems.append(f"{where}.{key}: must be a {known[key].__name__}")
        elif key in _URLS and not _is_url(value):
            problems.append(f"{where}.{key}: not an absolute URL: {value!r}")
    return problems


def _authors(authors: Any, where: str) -> list[str]:
    if not isinstance(authors, list):
        return [f"{where}.authors: must be a list"]
    return [
        f"{where}.authors[{index}]: needs a name, url or avatar"
        for index, author in enumerate(authors)
        if not isinstance(author, dict) or not any(author.get(k) for k in ("name", "url", "avatar"))
    ]


def _is_url(value: object) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)
