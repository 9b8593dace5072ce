"""Traditional Chinese editions of a feed: OpenCC's own converter, applied to text and to the text of HTML.

The only module that imports opencc. ``zh-tw`` converts with OpenCC's ``s2twp`` (Taiwan standard, with Taiwan's
phrases: 软件 → 軟體), ``zh-hk`` with ``s2hk``. In HTML only the text between tags is converted: tags,
attribute values and URLs are never touched. An entry's converted text is kept by the caller (the store's
editions table) with a hash of the text it came from, so an entry that did not change is not converted again.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import re
from collections.abc import Mapping, Sequence

import opencc

from feeder.models import Entry

OPENCC_CONFIGS = {"zh-tw": "s2twp", "zh-hk": "s2hk"}

# A tag of sanitized HTML (attribute values are quoted and may hold ">"; comments are gone), captured so that
# splitting keeps it.
_TAG = re.compile(r"""(<(?:[^>"']|"[^"]*"|'[^']*')*>)""")
# Joins the text pieces of a fragment so OpenCC converts them in one call. A control character: text that
# reaches a feed never holds one (feeder.text.xml_safe), and OpenCC's dictionaries never match across it.
_SEPARATOR = "\x01"

Converted = tuple[str, str, str]
"""What is kept of an entry's conversion: (URL, hash of the original text, the converted text as JSON)."""


class Converter:
    """Converts Simplified Chinese text to one Traditional variant."""

    def __init__(self, variant: str) -> None:
        self.variant = variant
        self._opencc = opencc.OpenCC(OPENCC_CONFIGS[variant])
        self.conversions = 0
        """How many texts OpenCC converted: tests and benchmarks read it."""

    def text(self, text: str) -> str:
        """Plain text, converted."""
        if not text or text.isascii():
            return text
        self.conversions += 1
        return str(self._opencc.convert(text))

    def html(self, fragment: str) -> str:
        """An HTML fragment with its text converted and its markup byte for byte as it was."""
        if not fragment or fragment.isascii():
            return fragment
        pieces = _TAG.split(fragment)  # text, tag, text, tag, …, text: the text at the even places
        texts = pieces[0::2]
        converted = self.text(_SEPARATOR.join(texts)).split(_SEPARATOR) if _SEPARATOR not in fragment else []
        if len(converted) != len(texts):  # a separator in the text itself: each piece on its own
            converted = [self.text(text) for text in texts]
        pieces[0::2] = converted
        return "".join(pieces)

    def entries(
        self, entries: Sequence[Entry], kept: Mapping[str, tuple[str, str]]
    ) -> tuple[list[Entry], list[Converted]]:
        """The entries as this variant's feeds show them (same id, link, dates and image; text converted), and
        the conversions to keep. ``kept`` is what was kept before, by URL: used while its hash still matches."""
        shown: list[Entry] = []
        fresh: list[Converted] = []
        for entry in entries:
            original = _original_text(entry)
            source = hashlib.sha256(original.encode("utf-8", errors="surrogatepass")).hexdigest()
            before = kept.get(entry.url)
            if before is not None and before[0] == source:
                text = before[1]
            else:
                text = self._convert_entry(entry)
                fresh.append((entry.url, source, text))
            title, lead, content, categories = json.loads(text)
            shown.append(
                dataclasses.replace(entry, title=title, lead=lead, content_html=content, categories=tuple(categories))
            )
        return shown, fresh

    def _convert_entry(self, entry: Entry) -> str:
        categories = [self.text(term) for term in entry.categories]
        converted = [self.text(entry.title), self.text(entry.lead), self.html(entry.content_html), categories]
        return json.dumps(converted, ensure_ascii=False)


def _original_text(entry: Entry) -> str:
    return json.dumps([entry.title, entry.lead, entry.content_html, entry.categories], ensure_ascii=False)


@functools.cache
def converter(variant: str) -> Converter:
    """The process's converter for a variant (``zh-tw`` or ``zh-hk``): OpenCC loads its dictionaries once."""
    return Converter(variant)
