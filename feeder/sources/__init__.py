"""Sources: one module per kind, behind one small interface.

A source is polled once per refresh, inside the refresh's transaction: it writes the articles it found to the
store and says what it did in a SourceReport. The pipeline and the scheduler know only ``Source`` and
``open_source`` (interface.py); what a kind needs (a folder, a site's rules, a feed URL) stays in its module:

- ``seeds``: a folder of scraped article files, read by a site's rules (seeds.py, folder.py, reading.py);
- ``site``: a site described by a rules file, its feeds and its article pages (site.py);
- ``feed``: any RSS, Atom or JSON feed, with its articles' full text when asked (feed.py).

site.py and feed.py share the polling of feeds and pages (web.py) and the HTTP client (feeder/http.py).
This package module imports none of them: seed-reading worker processes import reading.py alone.
"""
