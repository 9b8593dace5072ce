"""Any article page → its main text and metadata, found by trafilatura: the only module that imports it.

For sites feeder has no rules for. Nothing here reaches the network: trafilatura is handed a tree lxml has
already parsed, never a string (htmldate, its date finder, downloads a string that looks like a URL), and
none of its download functions is called.

Dates: trafilatura (htmldate) gives the day of first publication only, as the page writes it. When the
page states a time with an offset for that same day (article:published_time, itemprop or JSON-LD
datePublished), the article is dated at that time; otherwise at midnight UTC of that day. htmldate reads
the clock itself: a day after today (local time) is not a publication day.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import lxml.html
import trafilatura

from feeder.errors import ParseError
from feeder.models import ParsedArticle
from feeder.parse.jsonld import json_ld_objects
from feeder.parse.markup import (
    day_utc,
    drop_keeping_tail,
    html_fragment,
    inner_html,
    iso_utc,
    joined,
    plain_text,
    unique,
)
from feeder.parse.pages import html_document

_DATES = {"original_date": True, "extensive_search": False}  # marked-up dates only, never a year in the prose
_STATED = (
    "//meta[@property=$meta or @name=$meta]/@content | //*[@itemprop=$key]/@content | //*[@itemprop=$key]/@datetime"
)
_SEPARATORS = re.compile(r"[,，;；]")
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})


def extract_page(html: str, url: str, locator: str) -> ParsedArticle:
    """The main text of an article page (decoded text) as HTML paragraphs, with its title, publication date,
    author, og:image and description (the lead). Comments, navigation, share bars and ads are left out.
    A page without article text gives a lead-only article (fulltext=False); one without title or text is a
    ParseError. The article keeps ``url``, whatever canonical link the page declares."""
    tree = html_document(html)
    published = _stated(tree, "article:published_time", "datePublished")
    modified = _stated(tree, "article:modified_time", "dateModified")
    meta = trafilatura.extract_metadata(tree, default_url=url, date_config=dict(_DATES))
    extracted = trafilatura.extract(
        tree,  # copied by trafilatura before it prunes anything
        url=url,  # links are resolved against it
        output_format="html",
        favor_precision=True,
        include_comments=False,
        include_tables=True,
        include_formatting=True,  # <strong> and <em>; headings, lists, quotes and tables are kept anyway
        include_links=True,
        include_images=False,  # the lead image (og:image) is shown above the body already
    )
    title = plain_text(meta.title or "")
    body = _body(extracted, title) if extracted else ""
    if not (title or body):
        raise ParseError("no article on the page: trafilatura found neither a title nor main text")
    categories = [*(meta.categories or []), *(meta.tags or [])]
    return ParsedArticle(
        locator=locator,
        url=url,
        title=title,
        scraped_at=None,
        published_at=_publication(meta.date, published),
        lead=plain_text(meta.description or ""),
        image=(meta.image or "").strip() or None,
        body_html=body,
        modified_at=next((m for m in map(iso_utc, modified) if m is not None), None),
        author=joined(plain_text(name) for name in (meta.author or "").split(";")),
        extra_categories=unique(plain_text(c) for t in categories for c in _SEPARATORS.split(t)),
        fulltext=bool(body),
    )


def _body(extracted: str, title: str) -> str:
    """The inner HTML of trafilatura's <body>, without the indentation it pretty-prints, the <pre> it doubles
    around code (<pre><pre>…</pre></pre>) and a first heading that repeats the title; "" when no text is left."""
    root = html_fragment(extracted, "div")
    first = root[0] if len(root) and not (root.text or "").strip() else None
    if first is not None and first.tag in _HEADINGS and plain_text(str(first.xpath("string()"))) == title:
        drop_keeping_tail(first)
    if not str(root.xpath("string()")).strip():
        return ""
    for outer in [e for e in root.iter("pre") if len(e) == 1 and e[0].tag == "pre" and not (e.text or "").strip()]:
        inner, tail, parent = outer[0], outer.tail, outer.getparent()
        if parent is not None:  # always: the root is no <pre>
            parent.replace(outer, inner)
            inner.tail = tail
    for element in root.iter():
        if any(a.tag == "pre" for a in element.iterancestors()):
            continue  # white space inside <pre> is the text's own
        if _indentation(element.tail):
            element.tail = None
        if element.tag != "pre" and len(element) and _indentation(element.text):
            element.text = None
    return inner_html(root)


def _indentation(text: str | None) -> bool:
    return text is not None and "\n" in text and not text.strip()


def _stated(tree: lxml.html.HtmlElement, meta: str, key: str) -> list[str]:
    """What the page's markup states for one date: Open Graph meta and microdata in page order, then JSON-LD."""
    found = tree.xpath(_STATED, meta=meta, key=key)
    values = [str(v) for v in found if isinstance(v, str)] if isinstance(found, list) else []
    return values + [v for o in json_ld_objects(tree) if isinstance(v := o.get(key), str)]


def _publication(day: str | None, stated: list[str]) -> datetime | None:
    """trafilatura's day, at the first stated time with an offset on that day, else at midnight UTC."""
    midnight = day_utc(day)
    if midnight is None:
        return None
    for value in stated:
        try:
            moment = datetime.fromisoformat(value.strip())
            if moment.utcoffset() is not None and moment.date() == midnight.date():
                return moment.astimezone(UTC)
        except (ValueError, OverflowError):
            continue
    return midnight
