"""Rendering benchmark: feeder.render.render_feed on 1000 entries against plain feedgen doing the same three outputs.

Run with `python -m bench --only render` (or `python -m bench.render`; `--profile` adds a cProfile of
render_feed). The figure is one render_feed call (Atom, RSS and JSON Feed bytes) on 1000 realistic entries
(Chinese text, about 4 KB of HTML each); the floor is a bare feedgen FeedGenerator filled with the same fields
(id, title, link, published, updated, summary, content, author, category), atom_str() and rss_str() with the
same pretty-printing, plus json.dumps of an equivalent JSON Feed 1.1 document with the same options. The
difference is what feeder adds around feedgen: text cleaning, its extensions (media, dc) and the per-entry
calls that feed them. The two alternate for several rounds; the best of each counts.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import pstats
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from feedgen.feed import FeedGenerator

from bench.common import Figure, alternate, print_table, synthetic_entries
from feeder import render_json
from feeder.config import FeedConfig
from feeder.formats import EntryText
from feeder.models import Entry, FeedDocument
from feeder.render import render_feed

ENTRIES = 1000
TARGET_RATIO = 1.2
BASE_URL = "http://127.0.0.1:8080/"
UPDATED = datetime(2024, 6, 1, tzinfo=UTC)
FEED = FeedConfig(
    name="rfi-cn",
    title="RFI 中文",
    description="法国国际广播电台中文网的文章",
    sources=("seeds",),
    language="zh-cn",
    author="RFI",
)


def feeder_render(entries: Sequence[Entry]) -> dict[str, bytes]:
    """The figure: what a refresh does for each feed it publishes."""
    return render_feed(FEED, entries, base_url=BASE_URL, updated=UPDATED, ttl_minutes=1)


def plain_feedgen(entries: Sequence[Entry]) -> dict[str, bytes]:
    """The floor: feedgen and json.dumps given the same fields, with nothing around them."""
    fg = FeedGenerator()
    fg.id(f"{BASE_URL}rfi-cn.atom")
    fg.title(FEED.title)
    fg.subtitle(FEED.description)
    fg.author({"name": FEED.author})
    fg.link(href=f"{BASE_URL}rfi-cn.atom", rel="self")
    fg.link(href=BASE_URL, rel="alternate")
    fg.language(FEED.language)
    fg.updated(UPDATED)
    for entry in entries:
        fe = fg.add_entry(order="append")
        fe.id(entry.url)
        fe.title(entry.title)
        fe.link(href=entry.url)
        fe.published(entry.published)
        fe.updated(entry.updated)
        fe.summary(entry.lead, type="html")
        fe.content(entry.content_html, type="html")
        fe.author({"name": entry.author or FEED.author})
        for term in entry.categories:
            fe.category(term=term)
    return {
        "atom": fg.atom_str(pretty=True),
        "rss": fg.rss_str(pretty=True),
        **plain_json(entries),
    }


def json_feed(entries: Sequence[Entry]) -> dict[str, object]:
    """A JSON Feed 1.1 document with the items feeder's has."""
    return {
        "version": "https://jsonfeed.org/version/1.1",
        "title": FEED.title,
        "home_page_url": BASE_URL,
        "feed_url": f"{BASE_URL}rfi-cn.json",
        "description": FEED.description,
        "language": FEED.language,
        "authors": [{"name": FEED.author}],
        "items": [
            {
                "id": e.url,
                "url": e.url,
                "title": e.title,
                "summary": e.lead,
                "content_html": e.content_html,
                "image": e.image,
                "date_published": e.published.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "date_modified": e.updated.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "tags": list(e.categories),
                "authors": [{"name": e.author or FEED.author}],
            }
            for e in entries
        ],
    }


def timed(render: Callable[[Sequence[Entry]], dict[str, bytes]], entries: Sequence[Entry]) -> Callable[[], float]:
    """One sample: seconds for one call, after a full collection so no earlier garbage is paid for here."""

    def run() -> float:
        gc.collect()
        started = time.perf_counter()
        render(entries)
        return time.perf_counter() - started

    return run


def figures(rounds: int) -> list[Figure]:
    entries = synthetic_entries(ENTRIES)
    sizes = {name: len(data) for name, data in feeder_render(entries).items()}  # also a warm-up of both
    plain_feedgen(entries)
    print(f"render: {ENTRIES} entries, feeder's files: " + ", ".join(f"{n} {s} B" for n, s in sizes.items()))
    contenders = {
        "feeder": timed(feeder_render, entries),
        "feedgen": timed(plain_feedgen, entries),
        "feeder JSON alone": timed(feeder_json, entries),
        "json.dumps alone": timed(plain_json, entries),
    }
    samples = alternate(rounds, contenders)
    samples.show("render", "s")
    measured, floor = samples.best("feeder"), samples.best("feedgen")
    feeder_json_s, plain_json_s = samples.best("feeder JSON alone"), samples.best("json.dumps alone")
    xml, plain_xml = measured - feeder_json_s, floor - plain_json_s
    return [
        Figure(
            name=f"render Atom + RSS + JSON, {ENTRIES} entries",
            measured=measured,
            unit="s",
            target=f"≤ {TARGET_RATIO}× plain feedgen",
            met=measured <= TARGET_RATIO * floor,
            floor=floor,
            note=(
                f"Atom + RSS alone (total less JSON): {xml:.3f} s vs {plain_xml:.3f} s, {xml / plain_xml:.2f}×;"
                f" JSON Feed alone: {feeder_json_s:.4f} s (orjson) vs {plain_json_s:.4f} s (json.dumps)"
            ),
        )
    ]


DOCUMENT = FeedDocument(
    path=FEED.name,
    feed_path=FEED.name,
    title=FEED.title,
    description=FEED.description,
    author=FEED.author,
    language=FEED.language,
    updated=UPDATED,
    ttl_minutes=1,
)


def feeder_json(entries: Sequence[Entry]) -> dict[str, bytes]:
    texts = [EntryText.of(entry, DOCUMENT.author) for entry in entries]
    return {"json": render_json.json_feed(DOCUMENT, entries, texts, BASE_URL)}


def plain_json(entries: Sequence[Entry]) -> dict[str, bytes]:
    return {"json": (json.dumps(json_feed(entries), ensure_ascii=False, indent=2) + "\n").encode()}


def profile(count: int = 25) -> None:
    """cProfile of one render_feed call, the ``count`` costliest functions by own time."""
    entries = synthetic_entries(ENTRIES)
    feeder_render(entries)
    profiler = cProfile.Profile()
    profiler.runcall(feeder_render, entries)
    pstats.Stats(profiler).sort_stats("tottime").print_stats(count)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="also print a cProfile of render_feed")
    args = parser.parse_args()
    print_table(figures(args.rounds))
    if args.profile:
        profile()


if __name__ == "__main__":
    main()
