"""Article pages → ParsedArticle by a site's rules: bytes decoded by charset, each field where the rules say
(JSON-LD, a selector's text, an attribute), the body without the furniture the rules name."""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from datetime import datetime

import lxml.etree
import lxml.html

from feeder.errors import ParseError
from feeder.models import ParsedArticle
from feeder.parse.jsonld import (
    chosen_article,
    json_ld_objects,
    ld_audio,
    ld_image,
    ld_keywords,
    ld_names,
    ld_strings,
    ld_text,
    resolved,
)
from feeder.parse.markup import (
    CHARSET_SNIFF_BYTES,
    XML_DECLARATION,
    header_charset,
    inner_html,
    iso_utc,
    joined,
    plain_text,
    remove_furniture,
    text_date,
    unique,
    usable_charset,
    xpath,
)
from feeder.rules import Field, Pick, SiteRules
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


# --- article pages: fields by the site's rules --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FieldsFound:
    """Which of a site's required fields its rules found on a page: what tells an admin the rules went stale."""

    site: str
    title: bool
    body: bool


class RulesMissedError(ParseError):
    """A page the rules found too little on to make an article of: which required fields they found."""

    def __init__(self, message: str, found: FieldsFound) -> None:
        super().__init__(message)
        self.found = found


def parse_page(html: str, url: str, locator: str, site: SiteRules) -> ParsedArticle:
    """An article page (decoded text) → its article, each field where the site's rules say. A page without a
    body (redesign, block page) gives a lead-only article (fulltext=False); a page without a title, or with
    neither lead, image nor text, is a ParseError."""
    return read_page(html, url, locator, site)[0]


def read_page(html: str, url: str, locator: str, site: SiteRules) -> tuple[ParsedArticle, FieldsFound]:
    """parse_page, and which required fields (title, body) the rules found; RulesMissedError when too little."""
    rules = site.article
    page = Page(html_document(html), url, site)
    title = page.text(rules.title)
    lead = page.text(rules.lead)
    image = page.text(rules.image, url_value=True) or None
    body_html = _article_body(page, rules.body)  # last: it takes the furniture out of the page
    found = FieldsFound(site=site.name, title=bool(title), body=bool(body_html))
    if not title:
        raise RulesMissedError("the page has no title (none of the rules' title selectors matched)", found)
    if not (lead or image or body_html):
        raise RulesMissedError("the page holds no lead, image or article text (a block page?)", found)
    article = ParsedArticle(
        locator=locator,
        url=page.canonical,
        title=title,
        scraped_at=None,
        published_at=page.date(rules.published),
        lead=lead,
        image=image,
        body_html=body_html,
        modified_at=page.date(rules.modified),
        author=joined(page.values(rules.author)),
        extra_categories=unique([*page.values(rules.sections), *page.values(rules.keywords)]),
        audio=ld_audio(page.ld.get("audio")) if rules.json_ld else None,
        fulltext=bool(body_html),
    )
    return article, found


class Page:
    """One parsed page and the ways a rule reads a value from it."""

    def __init__(self, root: lxml.html.HtmlElement, url: str, site: SiteRules) -> None:
        self.root = root
        self.site = site
        self.canonical = _canonical_link(root, url)
        self._ld: dict[str, object] | None = None

    @property
    def ld(self) -> dict[str, object]:
        """The page's own schema.org article, read the first time a rule asks for it."""
        if self._ld is None:
            self._ld = chosen_article(json_ld_objects(self.root), self.canonical)
        return self._ld

    def values(self, field: Field, *, url_value: bool = False) -> list[str]:
        """The values of the first pick that gives any: every match of a selector (a JSON-LD list whole)."""
        for pick in field:
            found = self._ld_values(pick.json_ld) if pick.json_ld else self._matches(pick, url_value=url_value)
            if found:
                return found
        return []

    def text(self, field: Field, *, url_value: bool = False) -> str:
        return next(iter(self.values(field, url_value=url_value)), "")

    def date(self, field: Field) -> datetime | None:
        """The first value of any pick that reads as a date with an offset, or in one of the site's date formats
        (in its time zone); an ISO date without an offset is not trusted."""
        for pick in field:
            for value in self.values((pick,)):
                moment = iso_utc(value)
                if moment is None:
                    written = text_date(value, self.site.article, self.site.timezone)
                    moment = written if isinstance(written, datetime) else None
                if moment is not None:
                    return moment
        return None

    def elements(self, pick: Pick) -> list[lxml.html.HtmlElement]:
        found = xpath(pick.xpath)(self.root)
        return [e for e in found if isinstance(e, lxml.etree._Element)] if isinstance(found, list) else []

    def _matches(self, pick: Pick, *, url_value: bool) -> list[str]:
        values = []
        for element in self.elements(pick):
            if pick.attr is None:
                value = text_of(element)
            else:
                value = collapse_space(xml_safe(element.get(pick.attr) or ""))
                if pick.attr.endswith("srcset"):
                    value = value.split(",")[0].strip().split(" ")[0]
                if url_value and value.lower().startswith("data:"):
                    value = ""  # a lazy-loading placeholder, not the image
            if value:
                values.append(value)
        return values

    def _ld_values(self, name: str) -> list[str]:
        value = self.ld.get(name)
        if name == "author":
            return ld_names(value)
        if name == "image":
            return [image] if (image := ld_image(value)) else []
        if name == "keywords":
            return ld_keywords(value)
        if name == "articleSection":
            return [plain_text(s) for s in ld_strings(value)]
        text = ld_text(value)
        return [text if name.startswith("date") else plain_text(text)] if text else []


def html_document(html: str) -> lxml.html.HtmlElement:
    text = XML_DECLARATION.sub("", xml_safe(html).lstrip("\ufeff"), count=1)
    if not text.strip():
        raise ParseError("the page is empty")
    try:
        return lxml.html.document_fromstring(text)
    except (lxml.etree.ParserError, ValueError) as e:
        raise ParseError(f"page HTML cannot be parsed: {e}") from e


def text_of(element: lxml.html.HtmlElement | None) -> str:
    return "" if element is None else collapse_space(xml_safe(element.text_content()))


def _canonical_link(root: lxml.html.HtmlElement, url: str) -> str:
    for link in root.iter("link"):
        rels = (link.get("rel") or "").lower().split()
        href = (link.get("href") or "").strip()
        if "canonical" in rels and href:
            return resolved(url, href) or url
    return url


def _article_body(page: Page, field: Field) -> str:
    """Inner HTML of the first body match without furniture; "" when there is no body or no text."""
    for pick in field:
        for body in page.elements(pick):
            remove_furniture(body, page.site.article)
            return inner_html(body) if text_of(body) else ""
    return ""
