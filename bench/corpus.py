"""Synthetic seed folders shaped like RFI's: for the pipeline benchmarks.

Each file follows the seed format (README, seed format) and looks like the bundled
seeds: a Paris-time date line, a lead image, a lead, body paragraphs of Chinese
sentences taken from the bundled seeds, the newsletter placeholders and the
share block, about 4 KB in all. One file in ten repeats an earlier article under
another spelling of its URL (http, a raw Chinese path, tracking parameters, a
fragment), as real scrapes do. The same count always gives the same files.
"""

from __future__ import annotations

import html
import os
import random
import re
import urllib.parse
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
PARIS = ZoneInfo("Europe/Paris")
SECTIONS = ("中国", "港澳台", "国际", "法国", "经贸", "科技与文化", "专栏检索", "亚洲")
START = datetime(2023, 1, 1, tzinfo=UTC)
TARGET_BYTES = 4096
DUPLICATE_SHARE = 10  # one file in this many repeats an earlier article


def sentences() -> list[str]:
    """Every sentence of the bundled seeds' paragraphs."""
    found: set[str] = set()
    for path in sorted((ROOT / "seeds").glob("*.txt")):
        for paragraph in re.findall(r"<p>([^<]+)</p>", path.read_text(encoding="utf-8")):
            found.update(s.strip() + "。" for s in paragraph.split("。") if len(s.strip()) > 8)
    return sorted(found)


def write_corpus(folder: Path, count: int, seed: int = 6) -> int:
    """Write ``count`` seed files into ``folder``; returns how many distinct articles they hold."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    pool = sentences()
    urls: list[tuple[str, str, datetime, int]] = []
    for n in range(count):
        if urls and n % DUPLICATE_SHARE == DUPLICATE_SHARE - 1:
            url, title, published, article = urls[rng.randrange(len(urls))]
            url = respell(url, rng)
        else:
            article = n
            published = START + timedelta(minutes=37 * n + rng.randrange(30))
            section = SECTIONS[n % len(SECTIONS)]
            slug = re.sub(r"[^\u4e00-\u9fff]", "", rng.choice(pool))[:12]
            path = f"/cn/{section}/{published:%Y%m%d}-{slug}-{n}"
            url = "https://www.rfi.fr" + urllib.parse.quote(path)
            title = rng.choice(pool)[:24].rstrip("。，")
            urls.append((url, title, published, article))
        name = f"{n:06d}_{rng.getrandbits(64):016x}.txt"
        scraped = published + timedelta(minutes=rng.randrange(5, 600))
        article_rng = random.Random(article)  # noqa: S311 - a repeat draws the same text
        (folder / name).write_bytes(seed_file(url, title, published, scraped=scraped, pool=pool, rng=article_rng))
    return len(urls)


def respell(url: str, rng: random.Random) -> str:
    """The same article's URL spelled as scrapers meet it."""
    spelling = rng.randrange(4)
    if spelling == 0:
        return url.replace("https://", "http://", 1)
    if spelling == 1:
        return urllib.parse.unquote(url)
    if spelling == 2:
        return f"{url}?xtor=RSS-{rng.randrange(1000)}&utm_source=feed"
    return f"{url}#ancre-{rng.randrange(1000)}"


def seed_file(
    url: str, title: str, published: datetime, *, scraped: datetime, pool: list[str], rng: random.Random
) -> bytes:
    """One seed file; ``rng`` decides the article's image and text, so a repeat has the same ones."""
    local = published.astimezone(PARIS)
    image = f"https://s.rfi.fr/media/display/{rng.getrandbits(128):032x}/w:1280/p:16x9/{rng.getrandbits(32):08x}.jpg"
    lead = "".join(rng.sample(pool, 2))
    head = (
        f"<!--{int(scraped.timestamp() * 1000)}-->\n[{html.escape(title, quote=False)}]({url})\n------\n\n"
        f'<div>{local:%d/%m/%Y - %H:%M}</div><img src="{image}"><p><strong>{lead}        </strong></p><div>'
    )
    tail = "<div data-selfpromo-newsletter></div><div data-selfpromo-app></div></div>" + share_block(url) + "\n"
    body: list[str] = []
    size = len(head.encode()) + len(tail.encode())
    while size < TARGET_BYTES:
        paragraph = "<p>" + "".join(rng.sample(pool, rng.randrange(1, 4))) + "</p>"
        body.append(paragraph)
        size += len(paragraph.encode())
    return (head + "".join(body) + tail).encode()


def share_block(url: str) -> str:
    short = urllib.parse.quote("https://rfi.my/AEz8", safe="")
    back = urllib.parse.quote(url, safe="")
    return (
        "<div><div>分享 :</div><div>"
        f'<a href="https://www.facebook.com/dialog/share?app_id=113191652055439&amp;href={short}.F&amp;'
        f'redirect_uri={back}" target="_blank" rel="noopener nofollow"><span></span></a>'
        f'<a href="whatsapp://send?text={short}.W" target="_blank" rel="noopener nofollow"><span></span></a>'
        f'<a href="https://x.com/intent/tweet?url={short}.X&amp;via=RFI_Cn" target="_blank"'
        ' rel="noopener nofollow"><span></span></a>'
        '<span data-root-share><share-button v-on:open="openModal"></share-button>'
        '<share-modal v-if="displayModal" v-on:close="closeModal"></share-modal></span></div></div>'
    )


def folder_bytes(folder: Path) -> int:
    with os.scandir(folder) as entries:
        return sum(entry.stat().st_size for entry in entries)


if __name__ == "__main__":
    import sys

    target = Path(sys.argv[1])
    articles = write_corpus(target, int(sys.argv[2]))
    print(f"{target}: {int(sys.argv[2])} files, {articles} articles, {folder_bytes(target) / 1e6:.1f} MB")
