"""schema.org articles in a page's JSON-LD: which one is the page's, and its values read leniently."""

from __future__ import annotations

import json
import re
from urllib.parse import unquote, urljoin, urlsplit

import lxml.html

from feeder.models import Enclosure
from feeder.parse.markup import AUDIO_FORMATS, JSONLD_ARTICLE_TYPES, byte_count, iso_duration, plain_text

_KEYWORD_SEPARATOR = re.compile(r"[,，]")


def json_ld_objects(root: lxml.html.HtmlElement) -> list[dict[str, object]]:
    """Every JSON object of every ld+json block, top level, arrays and @graph flattened; bad blocks skipped."""
    found: list[dict[str, object]] = []
    for script in root.iter("script"):
        if (script.get("type") or "").split(";")[0].strip().lower() != "application/ld+json":
            continue
        try:
            data = json.loads(script.text or "", strict=False)
        except (ValueError, RecursionError):
            continue
        for item in data if isinstance(data, list) else [data]:
            if isinstance(item, dict):
                found.append(item)
                graph = item.get("@graph")
                found.extend(g for g in (graph if isinstance(graph, list) else []) if isinstance(g, dict))
    return found


def chosen_article(objects: list[dict[str, object]], canonical: str) -> dict[str, object]:
    """The article whose url/mainEntityOfPage is this page, else the first article, else {}."""
    articles = [o for o in objects if JSONLD_ARTICLE_TYPES.intersection(ld_strings(o.get("@type")))]
    page = page_key(canonical)
    for article in articles:
        entity = article.get("mainEntityOfPage")
        spellings = [article.get("url"), entity.get("@id") if isinstance(entity, dict) else entity]
        if page and any(isinstance(s, str) and page_key(resolved(canonical, s)) == page for s in spellings):
            return article
    return articles[0] if articles else {}


def resolved(base: str, href: str) -> str:
    """href resolved against base; "" when either is not a URL urllib can split (https://[broken)."""
    try:
        return str(urljoin(base, href.strip()))
    except ValueError:
        return ""


def page_key(url: str) -> tuple[str, str] | None:
    """Host and percent-decoded path: what two spellings of one page share (query, fragment, final / dropped)."""
    try:
        parts = urlsplit(url.strip())
        return (parts.hostname or "").lower(), unquote(parts.path).rstrip("/")
    except ValueError:
        return None


def ld_strings(value: object) -> list[str]:
    """A JSON-LD value that may be one string or a list of them."""
    values = value if isinstance(value, list) else [value]
    return [v.strip() for v in values if isinstance(v, str) and v.strip()]


def ld_text(value: object) -> str:
    return next(iter(ld_strings(value)), "")


def ld_keywords(value: object) -> list[str]:
    """keywords: a comma-separated string or an array (whose items may hold commas too)."""
    return [k for v in ld_strings(value) for k in (plain_text(p) for p in _KEYWORD_SEPARATOR.split(v)) if k]


def ld_names(value: object) -> list[str]:
    """author: a name, a Person/Organization, or a list of either."""
    values = value if isinstance(value, list) else [value]
    names = (v.get("name") if isinstance(v, dict) else v for v in values)
    return [plain_text(n) for n in names if isinstance(n, str)]


def ld_image(value: object) -> str | None:
    """image: a URL, an ImageObject (url or contentUrl), or a list of either (the first one wins)."""
    for item in value if isinstance(value, list) else [value]:
        url = ld_text(item.get("url") or item.get("contentUrl")) if isinstance(item, dict) else ld_text(item)
        if url:
            return url
    return None


def ld_audio(value: object) -> Enclosure | None:
    """audio: the first AudioObject with a contentUrl, with its media type, size and duration."""
    for item in value if isinstance(value, list) else [value]:
        if not isinstance(item, dict):
            continue
        kinds = ld_strings(item.get("@type"))
        url = ld_text(item.get("contentUrl")) or ld_text(item.get("url"))
        if not url or (kinds and "AudioObject" not in kinds):
            continue
        written = ld_text(item.get("encodingFormat")).lower()
        kind = written if "/" in written else AUDIO_FORMATS.get(written.lstrip("."), "audio/mpeg")
        length = byte_count(item.get("contentSize"))
        return Enclosure(url=url, type=kind, length=length, duration=iso_duration(item.get("duration")))
    return None
