"""Plain-text helpers shared by the stages: what a feed may carry, and whitespace.

Pure functions on ``str``; standard library only.
"""

from __future__ import annotations

import html
import re

# What XML 1.0 forbids (C0 controls but tab/LF/CR, surrogates, U+FFFE and U+FFFF) and what feed validators flag
# though XML allows it: DEL, the C1 controls U+0080–U+009F (cp1252 mojibake), U+FFFD (bytes lost in decoding)
# and the noncharacters U+FDD0–U+FDEF.
_UNWANTED = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufdd0-\ufdef\ufffd\ufffe\uffff]")
# Terminal escape sequences (ECMA-48) that scraped text picks up from a console: colour codes such as
# "\x1b[0m", operating-system commands ended by BEL or ST, and the short ESC + character forms. Removing only
# the ESC would leave "[0m" in the text.
_TERMINAL_ESCAPE = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"
    r"|(?:\x1b\]|\x9d)[^\x07\x1b\x9c]{0,512}(?:\x07|\x1b\\|\x9c)"
    r"|\x1b[ -/]*[0-~]"
)
_ESCAPE_STARTS = ("\x1b", "\x9b", "\x9d")
_TAG_LIKE = re.compile(r"<\s*/?\s*[A-Za-z!?][^>]*>")


def xml_safe(text: str) -> str:
    """The text without anything a feed must not carry: characters XML 1.0 forbids, characters validators
    flag (DEL, C1 controls, U+FFFD, noncharacters) and terminal escape sequences, whole."""
    if any(start in text for start in _ESCAPE_STARTS):
        text = _TERMINAL_ESCAPE.sub("", text)
    return _UNWANTED.sub("", text)


def unescaped(text: str) -> str:
    """Plain text with the character references that a double escape left in it decoded, however many rounds
    it took: a title escaped twice upstream reads ``A & B``, not ``A &amp; B``. Feed validators flag a
    reference in a plain-text element, since readers disagree on whether to decode it."""
    for _ in range(_ESCAPE_ROUNDS):
        if "&" not in text:
            break
        decoded = html.unescape(text)
        if decoded == text:
            break
        text = decoded
    return text


_ESCAPE_ROUNDS = 4


def plain_text(text: str) -> str:
    """A title, category or name as a feed carries it: what XML can carry, references decoded, nothing that
    looks like a tag, one space between words."""
    return without_tag_lookalikes(xml_safe(unescaped(text)))


def collapse_space(text: str) -> str:
    """One space between words, none at the ends (ideographic space included).

    str.split() and the regular expression \\s agree on what white space is (str.isspace); split is faster."""
    return " ".join(text.split())


def without_tag_lookalikes(text: str) -> str:
    """Plain text minus anything that looks like a tag (decoded from &lt;…&gt;): to readers that take an RSS
    title as HTML it would be markup."""
    return collapse_space(_TAG_LIKE.sub("", text))
