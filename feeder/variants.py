"""Traditional Chinese editions of a feed: OpenCC's own converter, applied to text and to the text of HTML.

The only module that imports opencc. ``zh-tw`` converts with OpenCC's ``s2twp`` (Taiwan standard, with Taiwan's
phrases: 软件 → 軟體), ``zh-hk`` with ``s2hk``. In HTML only the text between tags is converted: tags,
attribute values and URLs are never touched. Converted text is cached by content hash, within a bound on the
characters kept, so an entry that did not change is not converted again by the same process.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import re
from collections import OrderedDict
from collections.abc import Callable

import opencc

from feeder.models import Entry

OPENCC_CONFIGS = {"zh-tw": "s2twp", "zh-hk": "s2hk"}
CACHE_CHARACTERS = 4_000_000
"""What the cache of converted text may hold, in characters (about 8 MB): the entries of the feeds a
refresh renders again, several times over."""

# A tag of sanitized HTML (attribute values are quoted and may hold ">"; comments are gone), captured so that
# splitting keeps it.
_TAG = re.compile(r"""(<(?:[^>"']|"[^"]*"|'[^']*')*>)""")
# Joins the text pieces of a fragment so OpenCC converts them in one call. A control character: text that
# reaches a feed never holds one (feeder.text.xml_safe), and OpenCC's dictionaries never match across it.
_SEPARATOR = "\x01"


class Converter:
    """Converts Simplified Chinese text to one Traditional variant."""

    def __init__(self, variant: str) -> None:
        self.variant = variant
        self._opencc = opencc.OpenCC(OPENCC_CONFIGS[variant])
        self._cache: OrderedDict[bytes, str] = OrderedDict()
        self._cached_characters = 0
        self.conversions = 0
        """How many texts OpenCC converted (what the cache did not answer): tests and benchmarks read it."""

    def text(self, text: str) -> str:
        """Plain text, converted."""
        return self._cached("t", text, self._convert)

    def html(self, fragment: str) -> str:
        """An HTML fragment with its text converted and its markup byte for byte as it was."""
        return self._cached("h", fragment, self._convert_html)

    def entry(self, entry: Entry) -> Entry:
        """An entry as this variant's feeds show it: same id, link, dates and image; text converted."""
        return dataclasses.replace(
            entry,
            title=self.text(entry.title),
            lead=self.text(entry.lead),
            content_html=self.html(entry.content_html),
            categories=tuple(self.text(term) for term in entry.categories),
        )

    def _convert(self, text: str) -> str:
        self.conversions += 1
        return str(self._opencc.convert(text))

    def _convert_html(self, fragment: str) -> str:
        pieces = _TAG.split(fragment)  # text, tag, text, tag, …, text: the text at the even places
        texts = pieces[0::2]
        if _SEPARATOR in fragment:
            converted = [self._convert(text) if text else text for text in texts]
        else:
            converted = self._convert(_SEPARATOR.join(texts)).split(_SEPARATOR)
        if len(converted) != len(texts):  # never seen; then each piece on its own rather than misplace text
            converted = [self._convert(text) if text else text for text in texts]
        pieces[0::2] = converted
        return "".join(pieces)

    def _cached(self, kind: str, text: str, convert: Callable[[str], str]) -> str:
        if not text or text.isascii():
            return text
        key = hashlib.blake2b(f"{kind}{text}".encode(errors="surrogatepass"), digest_size=16).digest()
        found = self._cache.get(key)
        if found is not None:
            self._cache.move_to_end(key)
            return found
        result = convert(text)
        self._remember(key, result)
        return result

    def _remember(self, key: bytes, value: str) -> None:
        self._cache[key] = value
        self._cached_characters += len(value)
        while self._cached_characters > CACHE_CHARACTERS and self._cache:
            _, dropped = self._cache.popitem(last=False)
            self._cached_characters -= len(dropped)


@functools.cache
def converter(variant: str) -> Converter:
    """The process's converter for a variant (``zh-tw`` or ``zh-hk``), with its cache."""
    return Converter(variant)
