"""RFI article pages → ParsedArticle: bytes decoded by charset, JSON-LD metadata, the body without furniture."""

from __future__ import annotations

import codecs
import json
import re
from urllib.parse import unquote, urljoin, urlsplit

import lxml.etree
import lxml.html

from feeder.errors import ParseError
from feeder.models import Enclosure, ParsedArticle
from feeder.parse.markup import (
    AUDIO_FORMATS,
    CHARSET_SNIFF_BYTES,
    JSONLD_ARTICLE_TYPES,
    PAGE_BODY_CLASS,
    PAGE_FIELD_CLASSES,
    PAGE_LEAD_CLASS,
    PAGE_MAIN_MEDIA_CLASS,
    XML_DECLARATION,
    byte_count,
    drop_keeping_tail,
    header_charset,
    inner_html,
    iso_duration,
    iso_utc,
    joined,
    plain_text,
    remove_furniture,
    unique,
    usable_charset,
)
from feeder.text import collapse_space, xml_safe

# --- article pages: charset --------------------------------------------------------------------------------------

_META_CHARSET = re.compile(rb"""<meta\b[^>]*?\bcharset\s*=\s*["']?\s*([A-Za-z0-9._:\-]+)""", re.IGNORECASE)


def decode_html(content: bytes, content_type: str | None) -> str:
    """An HTML page's text: charset of the Content-Type header if usable, else <meta charset> (or http-equiv)
    in the first 2 KB, else UTF-8. Undecodable bytes become U+FFFD; lxml only ever gets the str."""
    encoding = header_charset(content_type)
    if encoding is None:
        for meta in _META_CHARSET.finditer(content[:CHARSET_SNIFF_BYTES]):
            encoding = usable_charset(meta.group(1).decode("ascii"))
            if encoding is not None:
                # a page that can declare its charset in ASCII is not UTF-16 or UTF-32 (WHATWG)
                encoding = "utf-8" if encoding.startswith(("utf-16", "utf-32")) else encoding
                break
    if encoding is None:
        boms = ((codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
        encoding = next((codec for bom, codec in boms if content.startswith(bom)), "utf-8")
    return content.decode(encoding, errors="replace").removeprefix("\ufeff")


# --- article pages: RFI ------------------------------------------------------------------------------------------

_CLASS_XPATH = "descendant-or-self::*[contains(concat(' ', normalize-space(@class), ' '), $token)]"
_KEYWORD_SEPARATOR = re.compile(r"[,，]")


def parse_page(html: str, url: str, locator: str) -> ParsedArticle:
    """An RFI article page (decoded text) → its article: JSON-LD metadata with head-meta fallbacks, the body
    without furniture. A page without a body (redesign, block page) gives a lead-only article (fulltext=False);
    a page without a title, or with neither lead, image nor text, is a ParseError."""
    root = html_document(html)
    canonical = _canonical_link(root, url)
    meta = _head_meta(root)
    ld = _chosen_article(json_ld_objects(root), canonical)
    title = (
        plain_text(_ld_text(ld.get("headline")))
        or _first(meta, "og:title")
        or _element_text(next(iter(root.iterfind("head/title")), None))
    )
    if not title:
        raise ParseError("the page has no title (no JSON-LD headline, og:title or <title>)")
    chapo = _with_class(root, PAGE_LEAD_CLASS)
    lead = (
        (_element_text(chapo[0]) if chapo else "")
        or plain_text(_ld_text(ld.get("description")))
        or _first(meta, "og:description")
    )
    image = _ld_image(ld.get("image")) or _first(meta, "og:image") or _main_media_image(root) or None
    sections = [plain_text(s) for s in _ld_strings(ld.get("articleSection"))] or meta.get("article:section", [])
    keywords = _ld_keywords(ld.get("keywords")) or meta.get("article:tag", [])
    body_html = _article_body(root)
    if not (lead or image or body_html):
        raise ParseError("the page holds no lead, image or article text (a block page?)")
    return ParsedArticle(
        locator=locator,
        url=canonical,
        title=title,
        scraped_at=None,
        published_at=iso_utc(ld.get("datePublished")) or iso_utc(_first(meta, "article:published_time")),
        lead=lead,
        image=image,
        body_html=body_html,
        modified_at=iso_utc(ld.get("dateModified")) or iso_utc(_first(meta, "article:modified_time")),
        author=joined(_ld_names(ld.get("author"))),
        extra_categories=unique([*sections, *keywords]),
        audio=_ld_audio(ld.get("audio")),
        fulltext=bool(body_html),
    )


def html_document(html: str) -> lxml.html.HtmlElement:
    """A page's text parsed as an HTML document; ParseError when it is empty or lxml refuses it."""
    text = XML_DECLARATION.sub("", xml_safe(html).lstrip("\ufeff"), count=1)
    if not text.strip():
        raise ParseError("the page is empty")
    try:
        return lxml.html.document_fromstring(text)
    except (lxml.etree.ParserError, ValueError) as e:
        raise ParseError(f"page HTML cannot be parsed: {e}") from e


def _with_class(root: lxml.html.HtmlElement, name: str) -> list[lxml.html.HtmlElement]:
    """Elements (root included) whose class attribute holds this token, in document order."""
    found = root.xpath(_CLASS_XPATH, token=f" {name} ")
    return [e for e in found if isinstance(e, lxml.html.HtmlElement)] if isinstance(found, list) else []


def _element_text(element: lxml.html.HtmlElement | None) -> str:
    return "" if element is None else collapse_space(xml_safe(element.text_content()))


def _canonical_link(root: lxml.html.HtmlElement, url: str) -> str:
    for link in root.iter("link"):
        rels = (link.get("rel") or "").lower().split()
        href = (link.get("href") or "").strip()
        if "canonical" in rels and href:
            return _resolved(url, href) or url
    return url


def _head_meta(root: lxml.html.HtmlElement) -> dict[str, list[str]]:
    """<meta property|name=… content=…> values by lower-case key, in order (article:tag repeats)."""
    found: dict[str, list[str]] = {}
    for meta in root.iter("meta"):
        key = (meta.get("property") or meta.get("name") or "").strip().lower()
        value = collapse_space(xml_safe(meta.get("content") or ""))
        if key and value:
            found.setdefault(key, []).append(value)
    return found


def _first(meta: dict[str, list[str]], key: str) -> str:
    return next(iter(meta.get(key, [])), "")


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


def _chosen_article(objects: list[dict[str, object]], canonical: str) -> dict[str, object]:
    """The article whose url/mainEntityOfPage is this page, else the first article, else {}."""
    articles = [o for o in objects if JSONLD_ARTICLE_TYPES.intersection(_ld_strings(o.get("@type")))]
    page = _page_key(canonical)
    for article in articles:
        entity = article.get("mainEntityOfPage")
        spellings = [article.get("url"), entity.get("@id") if isinstance(entity, dict) else entity]
        if page and any(isinstance(s, str) and _page_key(_resolved(canonical, s)) == page for s in spellings):
            return article
    return articles[0] if articles else {}


def _resolved(base: str, href: str) -> str:
    """href resolved against base; "" when either is not a URL urllib can split (https://[broken)."""
    try:
        return str(urljoin(base, href.strip()))
    except ValueError:
        return ""


def _page_key(url: str) -> tuple[str, str] | None:
    """Host and percent-decoded path: what two spellings of one page share (query, fragment, final / dropped)."""
    try:
        parts = urlsplit(url.strip())
        return (parts.hostname or "").lower(), unquote(parts.path).rstrip("/")
    except ValueError:
        return None


def _ld_strings(value: object) -> list[str]:
    """A JSON-LD value that may be one string or a list of them."""
    values = value if isinstance(value, list) else [value]
    return [v.strip() for v in values if isinstance(v, str) and v.strip()]


def _ld_text(value: object) -> str:
    return next(iter(_ld_strings(value)), "")


def _ld_keywords(value: object) -> list[str]:
    """keywords: a comma-separated string or an array (whose items may hold commas too)."""
    return [k for v in _ld_strings(value) for k in (plain_text(p) for p in _KEYWORD_SEPARATOR.split(v)) if k]


def _ld_names(value: object) -> list[str]:
    """author: a name, a Person/Organization, or a list of either."""
    values = value if isinstance(value, list) else [value]
    names = (v.get("name") if isinstance(v, dict) else v for v in values)
    return [plain_text(n) for n in names if isinstance(n, str)]


def _ld_image(value: object) -> str | None:
    """image: a URL, an ImageObject (url or contentUrl), or a list of either (the first one wins)."""
    for item in value if isinstance(value, list) else [value]:
        url = _ld_text(item.get("url") or item.get("contentUrl")) if isinstance(item, dict) else _ld_text(item)
        if url:
            return url
    return None


def _ld_audio(value: object) -> Enclosure | None:
    """audio: the first AudioObject with a contentUrl, with its media type, size and duration."""
    for item in value if isinstance(value, list) else [value]:
        if not isinstance(item, dict):
            continue
        kinds = _ld_strings(item.get("@type"))
        url = _ld_text(item.get("contentUrl")) or _ld_text(item.get("url"))
        if not url or (kinds and "AudioObject" not in kinds):
            continue
        written = _ld_text(item.get("encodingFormat")).lower()
        kind = written if "/" in written else AUDIO_FORMATS.get(written.lstrip("."), "audio/mpeg")
        length = byte_count(item.get("contentSize"))
        return Enclosure(url=url, type=kind, length=length, duration=iso_duration(item.get("duration")))
    return None


def _main_media_image(root: lxml.html.HtmlElement) -> str | None:
    """The first real image URL of the page's main media (lazy-loading placeholders skipped)."""
    for media in _with_class(root, PAGE_MAIN_MEDIA_CLASS)[:1]:
        for element in media.iter("img", "source"):
            srcset = (element.get("srcset") or element.get("data-srcset") or "").strip()
            candidates = (element.get("src"), element.get("data-src"), srcset.split(",")[0].strip().split(" ")[0])
            for candidate in candidates:
                if candidate and candidate.strip() and not candidate.strip().lower().startswith("data:"):
                    return candidate.strip()
    return None


def _article_body(root: lxml.html.HtmlElement) -> str:
    """Inner HTML of the article body without furniture and fields; "" when there is no body or no text."""
    bodies = _with_class(root, PAGE_BODY_CLASS)
    if not bodies:
        return ""
    body = bodies[0]
    for name in PAGE_FIELD_CLASSES:
        for element in _with_class(body, name):
            if element is not body:
                drop_keeping_tail(element)
    remove_furniture(body)
    return inner_html(body) if _element_text(body) else ""
