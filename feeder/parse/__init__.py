"""Bytes → ParsedArticle: understand a document and take the site's furniture out.

Pure: never opens files or sockets; the only package that imports lxml. What a
document *says* is extracted here, as written (URL not yet canonical, HTML not
yet sanitized); policy (canonical URLs, the tag allowlist, credible dates) is
normalize.py's job. What a site's pages look like comes from its rules file
(feeder/sites/*.yaml, as feeder.rules records), never from code here.

Four kinds of document: seed files (seeds.py), feeds (feeds.py: RSS 0.91–2.0,
RSS 1.0, Atom 0.3 and 1.0; jsonfeed.py: JSON Feed 1.0 and 1.1), article pages
read by a site's rules (pages.py; check.py says what each rule found) and any
other article page, whose main text trafilatura finds (extract.py: imported by
whoever needs it, since trafilatura costs ~6 MB and 60 ms that only `fulltext:
auto` needs).
"""

from feeder.parse.check import PageCheck, check_page
from feeder.parse.feeds import parse_feed
from feeder.parse.markup import MAX_FEED_BYTES, plain_text, remove_furniture, text_date
from feeder.parse.pages import FieldsFound, RulesMissedError, decode_html, parse_page, read_page
from feeder.parse.seeds import parse_seed

__all__ = [
    "MAX_FEED_BYTES",
    "FieldsFound",
    "PageCheck",
    "RulesMissedError",
    "check_page",
    "decode_html",
    "parse_feed",
    "parse_page",
    "parse_seed",
    "plain_text",
    "read_page",
    "remove_furniture",
    "text_date",
]
