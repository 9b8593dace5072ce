"""What a site's rules find on one page, field by field: the report ``feeder site check`` prints."""

from __future__ import annotations

from dataclasses import dataclass

import lxml.etree

from feeder.models import ParsedArticle
from feeder.parse.markup import xpath
from feeder.parse.pages import Page, RulesMissedError, html_document, read_page, text_of
from feeder.rules import Field, Pick, SiteRules

SHOWN_FIELDS = ("title", "published", "modified", "author", "image", "lead", "sections", "keywords")
REQUIRED = ("title", "body")


@dataclass(frozen=True, slots=True)
class FieldFound:
    name: str
    value: str
    rule: str
    """The pick that gave the value ("css: h1", "json_ld: headline"); "" when none did."""


@dataclass(frozen=True, slots=True)
class Removal:
    selector: str
    matched: int
    sample: str
    """The beginning of the text the first match held."""


@dataclass(frozen=True, slots=True)
class PageCheck:
    fields: tuple[FieldFound, ...]
    body_rule: str
    removals: tuple[Removal, ...]
    article: ParsedArticle | None
    problem: str | None
    missing: tuple[str, ...]
    """Required fields the rules found nothing for."""


def check_page(html: str, url: str, site: SiteRules) -> PageCheck:
    """Apply a site's rules to one page and say what each rule found; ParseError when it is no HTML at all."""
    page = Page(html_document(html), url, site)
    rules = site.article
    fields = tuple(_found(page, name, getattr(rules, name)) for name in SHOWN_FIELDS)
    body = next(((pick, matched[0]) for pick in rules.body if (matched := page.elements(pick))), None)
    removals = tuple(_removal(pick, body[1]) for pick in rules.removals) if body else ()
    article: ParsedArticle | None = None
    problem: str | None = None
    try:
        article, found = read_page(html, url, url, site)
    except RulesMissedError as e:
        problem, found = str(e), e.found
    missing = tuple(name for name in REQUIRED if not getattr(found, name))
    return PageCheck(fields, _described(body[0]) if body else "", removals, article, problem, missing)


def _found(page: Page, name: str, field: Field) -> FieldFound:
    for pick in field:
        values = page.values((pick,), url_value=name == "image")
        if values:
            shown = ", ".join(values) if name in ("sections", "keywords") else values[0]
            if name in ("published", "modified"):
                moment = page.date((pick,))
                shown = moment.isoformat() if moment else f"{shown!r}: not a date with an offset or in date_format"
            return FieldFound(name, shown, _described(pick))
    return FieldFound(name, "", "")


def _removal(pick: Pick, body: lxml.etree._Element) -> Removal:
    found = xpath(pick.xpath)(body)
    matches = [e for e in found if not isinstance(e, str)] if isinstance(found, list) else []
    sample = text_of(matches[0])[:60] if matches else ""
    return Removal(pick.css, len(matches), sample)


def _described(pick: Pick) -> str:
    if pick.json_ld:
        return f"json_ld: {pick.json_ld}"
    return f"css: {pick.css}" + (f" @{pick.attr}" if pick.attr else "")
