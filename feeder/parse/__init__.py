"""Bytes → ParsedArticle: understand a document and take the site's furniture out.

Pure: never opens files or sockets; the only package that imports lxml. What a
document *says* is extracted here, as written (URL not yet canonical, HTML not
yet sanitized); policy (canonical URLs, the tag allowlist, credible dates) is
normalize.py's job. Site knowledge lives in the tables of markup.py, so a
change of the site's markup is a change of data in one place.

Four kinds of document: seed files (seeds.py), feeds (feeds.py: RSS 0.91–2.0, RSS 1.0,
Atom 0.3 and 1.0; jsonfeed.py: JSON Feed 1.0 and 1.1), RFI article pages (pages.py) and any
other article page, whose main text trafilatura finds (extract.py).
"""

from feeder.parse.extract import extract_page
from feeder.parse.feeds import parse_feed
from feeder.parse.markup import MAX_FEED_BYTES, paris_to_utc, plain_text, remove_furniture
from feeder.parse.pages import decode_html, parse_page
from feeder.parse.seeds import parse_seed

__all__ = [
    "MAX_FEED_BYTES",
    "decode_html",
    "extract_page",
    "paris_to_utc",
    "parse_feed",
    "parse_page",
    "parse_seed",
    "plain_text",
    "remove_furniture",
]
