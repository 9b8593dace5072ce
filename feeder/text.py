"""Plain-text helpers shared by the stages: XML 1.0 legality and whitespace.

Pure functions on ``str``; standard library only.
"""

from __future__ import annotations

import re

# Everything XML 1.0 forbids: C0 controls but tab/LF/CR, surrogates, U+FFFE and U+FFFF.
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_TAG_LIKE = re.compile(r"<\s*/?\s*[A-Za-z!?][^>]*>")


def xml_safe(text: str) -> str:
    """Remove the characters XML 1.0 cannot carry, so any writer accepts the text."""
    return _XML_ILLEGAL.sub("", text)


def collapse_space(text: str) -> str:
    """One space between words, none at the ends (ideographic space included).

    str.split() and the regular expression \\s agree on what white space is (str.isspace); split is faster."""
    return " ".join(text.split())


def without_tag_lookalikes(text: str) -> str:
    """Plain text minus anything that looks like a tag (decoded from &lt;…&gt;): to readers that take an RSS
    title as HTML it would be markup."""
    return collapse_space(_TAG_LIKE.sub("", text))
