"""End-to-end: the real ``feeder refresh`` against a fake RFI on 127.0.0.1.

The fake RFI is a real HTTP server (``http.server.ThreadingHTTPServer`` on port 0, in a thread) serving the
documents of tests/data/rfi_site/ in RFI's shape: the main feed /cn/rss, the 中国 section feed
/cn/%E4%B8%AD%E5%9B%BD/rss and article pages /cn/<section>/<date>-<slug>. It sends ETag and Last-Modified,
honours If-None-Match / If-Modified-Since, gzips for clients that accept it, records every request, and can
be told per path to answer otherwise (403, 429 with Retry-After, a redirect, an oversized body, another
document). A second server on another port plays a foreign host: it must never receive a request.

Every test writes a config.yaml with a seeds source and an rfi source whose origin is the fake RFI, runs the
real command in a subprocess (tests.builders.run_feeder) and reads public/ back with feedparser. Articles:

    A 长江  中国        main feed + 中国 feed + seed   tests/data/rfi/page_article.html (the full RFI page)
    B 北欧  国际        main feed                      page_nordic.html
    C 上海  中国        main feed + 中国 feed          tests/data/rfi/page_two_articles.html (two NewsArticle blocks)
    D 巴黎  法国        main feed + seed               page_paris_museums.html
    E 纪录片 科技与文化  main feed                      page_documentary.html
    F 昆明  中国        中国 feed                      page_kunming_gbk.html (GBK, charset only in <meta>)
    G 木船  专栏检索     main feed                      tests/data/rfi/page_audio.html (JSON-LD AudioObject)
    H 哈尔滨 中国        seed only                      page_harbin.html
"""

from __future__ import annotations

import calendar
import gzip
import hashlib
import json
import re
import sqlite3
import subprocess
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import feedparser
import pytest

from tests.builders import run_feeder, seed_text, write_seed
from tests.feedcheck import check_json_feeds, validate_feeds

pytestmark = pytest.mark.e2e

SITE = Path(__file__).resolve().parent / "data" / "rfi_site"
FEED = "rfi-cn"
TIMEOUT = 30
RFI = "https://www.rfi.fr"
MAIN_FEED = "/cn/rss"
CHINA_FEED = "/cn/中国/rss"
LAST_MODIFIED = datetime(2024, 1, 10, 10, 5, tzinfo=UTC)
PASSWD_MARKERS = ("root:x:0:0", "/bin/bash", "/usr/sbin/nologin", "daemon:")
CANARY_TEXT = "CANARY-5e1d9b-this-file-must-never-be-read"


def canonical(path: str) -> str:
    """The canonical URL of an RFI path: https, percent-encoded with upper-case hex."""
    return RFI + quote(path)


# The articles (decoded paths), as listed in the module docstring.
A = "/cn/中国/20240109-长江流域冬季水鸟调查结果公布"
B = "/cn/国际/20240109-北欧多国迎来今冬最强寒潮"
C = "/cn/中国/20240108-上海图书馆东馆推出夜间阅读活动"
D = "/cn/法国/20240108-巴黎多家博物馆延长周末开放时间"
E = "/cn/科技与文化/20240108-纪录片《沙海驼铃》在里昂首映"
F = "/cn/中国/20240107-昆明植物园举办冬季山茶花展"
G = "/cn/专栏检索/文化艺术/20240110-布列塔尼的传统木船节"
H = "/cn/中国/20240106-哈尔滨冰雪大世界开园"
PAGES = (A, B, C, D, E, F, G, H)
IN_MAIN_FEED = (A, B, C, D, E, G)
IN_CHINA_FEED = (A, C, F)
IN_SEEDS = (A, D, H)

HTML = "text/html; charset=utf-8"
RSS = "application/rss+xml; charset=utf-8"
ROUTES: dict[str, tuple[str, str]] = {
    MAIN_FEED: ("rss_main.xml", RSS),
    CHINA_FEED: ("rss_china.xml", RSS),
    A: ("../rfi/page_article.html", HTML),
    B: ("page_nordic.html", HTML),
    C: ("../rfi/page_two_articles.html", HTML),
    D: ("page_paris_museums.html", HTML),
    E: ("page_documentary.html", HTML),
    F: ("page_kunming_gbk.html", "text/html"),
    G: ("../rfi/page_audio.html", HTML),
    H: ("page_harbin.html", HTML),
}
FOREIGN_ROUTES: dict[str, tuple[str, str]] = {
    "/evil.dtd": ("evil.dtd", "application/xml-dtd"),
    "/xxe": ("evil.dtd", "text/plain"),
}


# The fake site ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hit:
    """One request the fake site answered."""

    path: str  # the path as sent, percent-encoded
    headers: dict[str, str]  # header names in lower case
    status: int
    body_bytes: int  # bytes of body sent on the wire

    @property
    def decoded(self) -> str:
        return unquote(self.path)


@dataclass(frozen=True)
class Answer:
    """A canned answer for one path, instead of its document."""

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    file: str | None = None  # serve this document of tests/data/rfi_site (with validators) instead
    content_type: str = RSS  # of ``file``
    revision: str = ""  # changes the ETag of ``file``: the site regenerated the same bytes
    delay: float | None = None  # seconds before answering; None: the site's delay
    content_length: bool = True  # False: no Content-Length, the body ends when the connection closes


class FakeSite:
    """What the server serves and what it saw. Paths are percent-decoded; documents are found without a final /,
    canned answers only at their exact path."""

    def __init__(self, routes: Mapping[str, tuple[str, str]], substitutions: Mapping[bytes, bytes] | None = None):
        self.routes = dict(routes)
        self.substitutions = dict(substitutions or {})
        self.answers: dict[str, Answer] = {}
        self.hits: list[Hit] = []
        self.delay = 0.0
        self.in_flight = 0
        self.most_in_flight = 0
        self.origin = ""
        self.lock = threading.Lock()

    def answer(self, path: str, answer: Answer | None) -> None:
        """Answer ``path`` (decoded) with ``answer`` from now on; None restores its document."""
        if answer is None:
            self.answers.pop(path, None)
        else:
            self.answers[path] = answer

    def take(self) -> list[Hit]:
        """The requests since the last call."""
        with self.lock:
            hits, self.hits = self.hits, []
        return hits

    def delay_for(self, path: str) -> float:
        canned = self.answers.get(path)
        return self.delay if canned is None or canned.delay is None else canned.delay

    def document(self, name: str) -> bytes:
        data = (SITE / name).read_bytes()
        for placeholder, value in self.substitutions.items():
            data = data.replace(placeholder, value)
        return data

    def respond(self, path: str, headers: Mapping[str, str]) -> tuple[int, dict[str, str], bytes, bool]:
        """(status, headers, body, send Content-Length) for a GET of ``path`` (decoded)."""
        key = path.rstrip("/") or "/"
        canned = self.answers.get(path)
        if canned is not None and canned.file is None:
            return canned.status, dict(canned.headers), canned.body, canned.content_length
        route = (canned.file, canned.content_type) if canned is not None and canned.file else self.routes.get(key)
        if route is None:
            return 404, {"Content-Type": "text/plain"}, b"not found", True
        data = self.document(route[0])
        revision = canned.revision.encode() if canned is not None else b""
        etag = f'"{hashlib.sha256(revision + data).hexdigest()[:20]}"'
        validators = {"ETag": etag, "Last-Modified": format_datetime(LAST_MODIFIED, usegmt=True)}
        if _not_modified(headers, etag):
            return 304, validators, b"", True
        out = {"Content-Type": route[1], "Cache-Control": "max-age=60", **validators}
        if "gzip" in headers.get("accept-encoding", ""):
            data = gzip.compress(data)
            out |= {"Content-Encoding": "gzip", "Vary": "Accept-Encoding"}
        return 200, out, data, True


def _not_modified(headers: Mapping[str, str], etag: str) -> bool:
    if "if-none-match" in headers:
        tags = [t.strip() for t in headers["if-none-match"].split(",")]
        return etag in tags or "*" in tags
    if "if-modified-since" in headers:
        try:
            return parsedate_to_datetime(headers["if-modified-since"]) >= LAST_MODIFIED
        except (TypeError, ValueError):
            return False
    return False


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        site = self.server.site
        raw_path = urlsplit(self.path).path
        headers = {name.lower(): value for name, value in self.headers.items()}
        with site.lock:
            site.in_flight += 1
            site.most_in_flight = max(site.most_in_flight, site.in_flight)
        try:
            time.sleep(site.delay_for(unquote(raw_path)))
            status, out, body, with_length = site.respond(unquote(raw_path), headers)
            self.send_response(status)
            for name, value in out.items():
                self.send_header(name, value)
            if with_length:
                self.send_header("Content-Length", str(len(body)))
            else:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            with site.lock:
                site.hits.append(Hit(raw_path, headers, status, len(body)))
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):  # a client that stops reading an oversized body
                self.close_connection = True
        finally:
            with site.lock:
                site.in_flight -= 1

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    site: FakeSite


@contextmanager
def serving(site: FakeSite) -> Iterator[FakeSite]:
    """Serve ``site`` on 127.0.0.1, a free port, in a background thread."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.site = site
    site.origin = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield site
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@contextmanager
def fake_rfi(folder: Path) -> Iterator[tuple[FakeSite, FakeSite]]:
    """The fake RFI and the foreign host, with a canary file that only an XXE could read."""
    canary = folder / "canary.txt"
    canary.write_text(CANARY_TEXT + "\n", encoding="utf-8")
    with serving(FakeSite(FOREIGN_ROUTES, {b"__CANARY__": str(canary).encode()})) as foreign:
        substitutions = {b"__FOREIGN__": foreign.origin.encode(), b"__CANARY__": str(canary).encode()}
        with serving(FakeSite(ROUTES, substitutions)) as site:
            yield site, foreign
    assert foreign.take() == [], "a request left for the foreign host"


# The project: config, seeds, the command ---------------------------------------------------------------------


def config_yaml(origin: str, http: str = "") -> str:
    return (
        "output_dir: public\n"
        "state_dir: state\n"
        "base_url: http://127.0.0.1:8080/\n"
        "http:\n"
        "  contact: https://example.org/feeder-tests\n"
        "  connect_timeout: 5s\n"
        "  read_timeout: 10s\n"
        "  deadline: 15s\n"
        f"{http}"
        "sources:\n"
        "  - name: seeds\n"
        "    kind: seeds\n"
        "    path: seeds\n"
        "  - name: rfi\n"
        "    kind: site\n    site: rfi-cn\n"
        "    feeds: [https://www.rfi.fr/cn/rss, https://www.rfi.fr/cn/%E4%B8%AD%E5%9B%BD/rss]\n"
        f"    origin: {origin}\n"
        "    fulltext: true\n"
        "feeds:\n"
        f"  - name: {FEED}\n"
        "    title: RFI 中文\n"
        "    sources: [seeds, rfi]\n"
    )


def make_project(root: Path, origin: str, http: str = "") -> Path:
    """config.yaml and three seeds (A, D, H), each URL spelled differently from the feeds."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.yaml").write_text(config_yaml(origin, http), encoding="utf-8")
    seeds = root / "seeds"
    write_seed(
        seeds,
        "001_a000000000000001.txt",
        seed_text(
            f"http://www.rfi.fr{A}/?xtor=RSS-1#top",  # raw Chinese, http, tracking, a final / and a fragment
            "长江流域冬季水鸟调查结果公布",
            scraped_ms=ms(datetime(2024, 1, 9, 9, 15, 1, tzinfo=UTC)),
            date_div="09/01/2024 - 10:05",  # Paris → 09:05 UTC, the minute of the feed's 09:05:12
            lead="湖北、江西等地的志愿者完成了今年冬季的水鸟同步调查。",
            body="<p>种子文件里的旧版本正文。</p>",
        ),
    )
    write_seed(
        seeds,
        "002_d000000000000002.txt",
        seed_text(
            RFI + quote(D).lower() + "?utm_source=wechat&utm_medium=social",
            "巴黎多家博物馆延长周末开放时间",
            scraped_ms=ms(datetime(2024, 1, 8, 18, 0, tzinfo=UTC)),
            date_div="08/01/2024 - 18:30",  # Paris → 17:30 UTC, the minute of the feed's 17:30:45
            lead="从二月起，多家市立博物馆将在周六延长开放两个小时。",
            body="<p>种子文件里的巴黎博物馆正文。</p>",
        ),
    )
    write_seed(
        seeds,
        "003_h000000000000003.txt",
        seed_text(
            canonical(H),
            "哈尔滨冰雪大世界开园",
            scraped_ms=ms(datetime(2024, 1, 6, 8, 30, tzinfo=UTC)),
            date_div="06/01/2024 - 09:00",  # Paris → 08:00 UTC; the page says 08:00:40
            lead="今年的冰雪大世界占地面积扩大。",
            body="<p>种子文件里的哈尔滨正文。</p>",
        ),
    )
    return root


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def refresh(root: Path, expect: int = 0) -> subprocess.CompletedProcess[str]:
    return run_feeder(root / "config.yaml", "refresh", expect=expect, timeout=TIMEOUT)


def counts(stdout: str, source: str) -> dict[str, int]:
    """A source's figures from ``feeder refresh``'s report line."""
    match = re.search(
        rf"^{source}: (\d+) new, (\d+) updated, (\d+) unchanged, (\d+) skipped, (\d+) errors$", stdout, re.MULTILINE
    )
    assert match, f"no report line for {source}:\n{stdout}"
    return dict(zip(("new", "updated", "unchanged", "skipped", "errors"), map(int, match.groups()), strict=True))


def clear_page_backoff(root: Path, path: str) -> None:
    """Make a failed page due again by clearing its next_try in the state database.

    The page retry backoff is 5 minutes and ``feeder refresh`` reads the wall clock (run_feeder cannot pin
    it), so instead of waiting we do what the passing of time would do.
    """
    with sqlite3.connect(root / "state" / "feeder.sqlite3") as db:
        changed = db.execute("UPDATE pages SET next_try = NULL WHERE url = ?", (canonical(path),)).rowcount
    assert changed == 1, f"no page row for {canonical(path)}"


# Reading the output ---------------------------------------------------------------------------------------


def read_feed(path: Path) -> Any:
    parsed = feedparser.parse(path.read_bytes())
    assert parsed.bozo == 0, f"{path.name}: {parsed.get('bozo_exception')}"
    return parsed


def entries(root: Path, name: str = FEED, kind: str = "atom") -> dict[str, Any]:
    """{id: feedparser entry} of a published feed, in feed order."""
    return {e.id: e for e in read_feed(root / "public" / f"{name}.{kind}").entries}


def json_items(root: Path, name: str = FEED) -> dict[str, dict[str, Any]]:
    document = json.loads((root / "public" / f"{name}.json").read_text(encoding="utf-8"))
    return {item["id"]: item for item in document["items"]}


def stamp(struct: Any) -> datetime:
    return datetime.fromtimestamp(calendar.timegm(struct), UTC)


def terms(entry: Any) -> list[str]:
    return [tag.term for tag in entry.get("tags", [])]


def content(entry: Any) -> str:
    return str(entry.content[0].value)


def everything_written(root: Path) -> str:
    """All published files and the state database, as text, for searching leaked content."""
    parts = [p.read_bytes() for p in sorted((root / "public").rglob("*")) if p.is_file() and p.suffix != ".gz"]
    parts += [gzip.decompress(p.read_bytes()) for p in (root / "public").rglob("*.gz")]
    parts += [p.read_bytes() for p in (root / "state").iterdir() if p.is_file()]
    return b"\n".join(parts).decode("utf-8", errors="replace")


def page_hits(hits: list[Hit]) -> list[Hit]:
    return [h for h in hits if h.decoded.rstrip("/") in PAGES]


# One site, polled twice: the first poll ingests everything, the second finds nothing changed ----------------


@dataclass
class Polled:
    root: Path
    first: subprocess.CompletedProcess[str]
    first_hits: list[Hit]
    second: subprocess.CompletedProcess[str]
    second_hits: list[Hit]
    published_first: dict[str, bytes]
    published_second: dict[str, bytes]
    most_in_flight: int
    foreign_hits: list[Hit]


def published(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root / "public")): p.read_bytes() for p in sorted((root / "public").rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def polled(tmp_path_factory: pytest.TempPathFactory) -> Polled:
    root = tmp_path_factory.mktemp("rfi")
    with fake_rfi(root) as (site, foreign):
        make_project(root, site.origin)
        site.delay = 0.02  # lets overlapping requests show in most_in_flight
        first = refresh(root)
        first_hits = site.take()
        published_first = published(root)
        second = refresh(root)
        second_hits = site.take()
        foreign_hits = foreign.take()
    return Polled(
        root,
        first,
        first_hits,
        second,
        second_hits,
        published_first,
        published(root),
        site.most_in_flight,
        foreign_hits,
    )


def test_first_poll_merges_seeds_and_two_overlapping_feeds_one_entry_per_article(polled: Polled) -> None:
    assert polled.first.stderr == ""
    assert counts(polled.first.stdout, "seeds") == {"new": 3, "updated": 0, "unchanged": 0, "skipped": 0, "errors": 0}
    rfi = counts(polled.first.stdout, "rfi")
    # new: B, C, E, G from the main feed and F from the 中国 feed (A, D and H came from the seeds)
    assert rfi["new"] == 5
    assert rfi["errors"] == 0
    # one outcome per feed item (6 + 3) and per page (8)
    assert rfi["new"] + rfi["updated"] + rfi["unchanged"] == len(IN_MAIN_FEED) + len(IN_CHINA_FEED) + len(PAGES)
    expected = {canonical(p) for p in PAGES}
    for kind in ("atom", "rss"):
        ids = list(entries(polled.root, kind=kind))
        assert len(ids) == len(set(ids)) == 8, kind
        assert set(ids) == expected, kind
    assert set(json_items(polled.root)) == expected
    status = json.loads((polled.root / "state" / "status.json").read_text(encoding="utf-8"))
    assert status["entries"] == 8
    with sqlite3.connect(polled.root / "state" / "feeder.sqlite3") as db:
        rows = db.execute("SELECT url FROM entries").fetchall()
        sources = dict(db.execute("SELECT url, group_concat(source) FROM entry_sources GROUP BY url").fetchall())
    assert sorted(url for (url,) in rows) == sorted(expected)
    assert set(sources[canonical(A)].split(",")) == {"seeds", "rfi"}
    assert sources[canonical(B)] == "rfi"


def test_tracking_parameters_and_url_spellings_collapse_to_the_canonical_url(polled: Polled) -> None:
    # the feeds and seeds spell these as ?xtor=RSS-1, #xtor=…, #top, utm_*, http://, raw Chinese, lower-case
    # %e4 and a final slash; every entry is the one canonical URL
    for entry_id, entry in entries(polled.root).items():
        assert entry.link == entry_id
        parts = urlsplit(entry_id)
        assert parts.scheme == "https"
        assert parts.netloc == "www.rfi.fr"
        assert not parts.query
        assert not parts.fragment
        assert not parts.path.endswith("/")
        assert parts.path.isascii(), entry_id
        assert all(h == h.upper() for h in re.findall(r"%[0-9A-Fa-f]{2}", parts.path)), entry_id
        assert canonical(unquote(parts.path)) == entry_id


def test_a_page_with_two_news_article_blocks_yields_its_own(polled: Polled) -> None:
    shanghai = entries(polled.root)[canonical(C)]
    assert shanghai.title == "上海图书馆东馆推出夜间阅读活动"
    assert shanghai.author == "法广"
    assert stamp(shanghai.published_parsed) == datetime(2024, 1, 8, 15, 2, tzinfo=UTC)
    assert "上海图书馆东馆自本月起在周末延长开放时间" in content(shanghai)
    assert {"上海", "阅读", "图书馆"} <= set(terms(shanghai))
    assert "候鸟" not in terms(shanghai)  # a keyword of the embedded 长江 story's block
    # the embedded story's block did not touch the 长江 entry either
    changjiang = entries(polled.root)[canonical(A)]
    assert changjiang.title == "长江流域冬季水鸟调查结果公布"
    assert "上海图书馆" not in content(changjiang)


def test_pages_give_the_full_text_without_furniture(polled: Polled) -> None:
    atom = entries(polled.root)
    changjiang = content(atom[canonical(A)])
    assert "志愿者们按照统一的方法清点鸟类数量" in changjiang
    assert "种子文件里的旧版本正文" not in changjiang  # the page's version is newer than the seed's
    for furniture in ("广告位", "下载法广应用", "延伸阅读", "datawrapper", "rfi.my", "分享", "<script", "<iframe"):
        assert furniture not in changjiang, furniture
    assert "园方为部分珍稀品种设置了说明牌" in content(atom[canonical(F)])  # GBK page, charset in <meta> only
    assert "\ufffd" not in content(atom[canonical(F)])
    assert "冰雪大世界今年使用了约二十五万立方米的冰块" in content(atom[canonical(H)])  # seed-only article
    assert "瑞典北部城市基律纳" in content(atom[canonical(B)])


def test_section_feeds_hold_the_main_feeds_entries_of_their_section(polled: Polled) -> None:
    main = entries(polled.root)
    china = entries(polled.root, f"{FEED}/中国")
    assert (polled.root / "public" / FEED / "中国.atom").is_file()
    assert list(china) == [i for i in main if i.startswith(canonical("/cn/中国/"))]
    assert set(china) == {canonical(p) for p in (A, C, F, H)}
    for section in ("国际", "法国", "科技与文化", "专栏检索"):
        section_ids = list(entries(polled.root, f"{FEED}/{section}"))
        assert section_ids == [i for i in main if i.startswith(canonical(f"/cn/{section}/"))], section
    # a deeper folder (专栏检索/文化艺术) is a category, not a section feed of its own
    assert not (polled.root / "public" / FEED / "文化艺术.atom").exists()
    assert "文化艺术" in terms(main[canonical(G)])


def test_an_audio_article_gets_an_enclosure_in_rss_atom_and_json(polled: Polled) -> None:
    mp3 = "https://aod-rfi.akamaized.net/rfi/chinois/audio/modules/actu/202401/CHINOIS_-_CULTURE_10012024.mp3"
    for kind in ("atom", "rss"):
        boats = entries(polled.root, kind=kind)[canonical(G)]
        assert [(e.href, e.type) for e in boats.enclosures] == [(mp3, "audio/mpeg")], kind
    rss = ET.fromstring((polled.root / "public" / f"{FEED}.rss").read_bytes())
    items = {item.findtext("guid"): item for item in rss.iter("item")}
    enclosures = [e.attrib for e in items[canonical(G)].iter("enclosure")]
    assert enclosures == [{"url": mp3, "length": "0", "type": "audio/mpeg"}]
    assert all(not list(item.iter("enclosure")) for guid, item in items.items() if guid != canonical(G))
    attachments = json_items(polled.root)[canonical(G)]["attachments"]
    assert attachments == [{"url": mp3, "mime_type": "audio/mpeg", "duration_in_seconds": 750}]


def test_published_is_the_precise_time_within_the_seeds_minute(polled: Polled) -> None:
    expected = {
        A: datetime(2024, 1, 9, 9, 5, 12, tzinfo=UTC),  # seed 10:05 Paris; feed and page 09:05:12Z
        D: datetime(2024, 1, 8, 17, 30, 45, tzinfo=UTC),  # seed 18:30 Paris; feed and page 17:30:45Z
        H: datetime(2024, 1, 6, 8, 0, 40, tzinfo=UTC),  # seed 09:00 Paris; page 08:00:40Z
        F: datetime(2024, 1, 7, 6, 45, 30, tzinfo=UTC),
    }
    atom, rss, items = entries(polled.root), entries(polled.root, kind="rss"), json_items(polled.root)
    for path, moment in expected.items():
        assert stamp(atom[canonical(path)].published_parsed) == moment, path
        assert stamp(rss[canonical(path)].published_parsed) == moment, path
        assert datetime.fromisoformat(items[canonical(path)]["date_published"]) == moment, path
    # updated: the newest version's time, the 长江 page's dateModified
    assert stamp(atom[canonical(A)].updated_parsed) == datetime(2024, 1, 9, 10, 20, tzinfo=UTC)
    published = [stamp(e.published_parsed) for e in atom.values()]
    assert published == sorted(published, reverse=True)


def test_categories_are_the_union_of_seed_feeds_and_page(polled: Polled) -> None:
    atom, rss, items = entries(polled.root), entries(polled.root, kind="rss"), json_items(polled.root)
    # seed: the URL's section; feeds: 中国, 环境; page: articleSection 中国 and keywords 中国, 环境, 候鸟, 长江
    assert terms(atom[canonical(A)]) == ["中国", "环境", "候鸟", "长江"]
    assert terms(rss[canonical(A)]) == ["中国", "环境", "候鸟", "长江"]
    assert items[canonical(A)]["tags"] == ["中国", "环境", "候鸟", "长江"]
    assert set(terms(atom[canonical(D)])) == {"法国", "巴黎", "博物馆"}
    assert set(terms(atom[canonical(G)])) >= {"专栏检索", "文化艺术", "布列塔尼", "传统工艺"}


def test_ids_never_differ_between_feeds_and_formats(polled: Polled) -> None:
    main_atom = entries(polled.root)
    main_rss = entries(polled.root, kind="rss")
    assert list(main_atom) == list(main_rss) == list(json_items(polled.root))
    assert all(e.link == i for i, e in main_rss.items())
    for path in sorted((polled.root / "public" / FEED).glob("*.atom")):
        name = f"{FEED}/{path.stem}"
        section_atom, section_rss = entries(polled.root, name), entries(polled.root, name, "rss")
        assert list(section_atom) == list(section_rss) == list(json_items(polled.root, name)), name
        for entry_id, entry in section_atom.items():
            assert entry_id in main_atom, name
            assert entry.title == main_atom[entry_id].title
            assert entry.published_parsed == main_atom[entry_id].published_parsed


def test_first_poll_requests_each_feed_and_page_once_politely(polled: Polled) -> None:
    hits = polled.first_hits
    requested = sorted(h.decoded.rstrip("/") for h in hits)
    assert requested == sorted([MAIN_FEED, CHINA_FEED, *PAGES])
    assert all(h.status == 200 for h in hits)
    for hit in hits:
        assert hit.headers["user-agent"].startswith("feeder/"), hit.headers
        assert "https://example.org/feeder-tests" in hit.headers["user-agent"]
        assert "gzip" in hit.headers.get("accept-encoding", "")
        assert hit.headers["host"].startswith("127.0.0.1:")
        assert "if-none-match" not in hit.headers  # nothing cached yet
    assert 1 <= polled.most_in_flight <= 2  # http.per_host defaults to 2
    assert polled.foreign_hits == []


def test_second_poll_with_nothing_changed_downloads_no_body(polled: Polled) -> None:
    hits = polled.second_hits
    assert sorted(h.decoded for h in hits) == sorted([MAIN_FEED, CHINA_FEED])  # no page is due again
    assert [(h.decoded, h.status) for h in hits if h.status != 304] == []
    assert [h for h in hits if h.status == 200 and h.body_bytes] == []
    assert sum(h.body_bytes for h in hits) == 0
    first_etags = {h.decoded: h.headers for h in polled.first_hits}
    for hit in hits:
        assert hit.headers.get("if-none-match", "").startswith('"'), hit.headers
        assert hit.headers.get("if-modified-since") == format_datetime(LAST_MODIFIED, usegmt=True)
        assert hit.decoded in first_etags
    assert polled.second.stderr == ""
    assert counts(polled.second.stdout, "rfi") == {"new": 0, "updated": 0, "unchanged": 0, "skipped": 0, "errors": 0}
    assert counts(polled.second.stdout, "seeds")["skipped"] == 3
    assert "wrote" not in polled.second.stdout
    assert polled.published_second == polled.published_first


# Failures of single pages and feeds ----------------------------------------------------------------------


def test_a_403_page_keeps_the_feeds_lead_and_is_fetched_again_on_a_later_poll(tmp_path: Path) -> None:
    with fake_rfi(tmp_path) as (site, _):
        root = make_project(tmp_path / "project", site.origin)
        site.answer(B, Answer(403, {"Content-Type": "text/html"}, b"<html><body>Access denied</body></html>"))
        first = refresh(root)
        assert [h.status for h in site.take() if h.decoded == B] == [403]
        assert f"{canonical(B)}: cannot fetch {canonical(B)}: HTTP 403" in first.stderr
        assert "next try in 0:05:00" in first.stderr
        assert counts(first.stdout, "rfi")["errors"] == 1
        nordic = entries(root)[canonical(B)]
        assert nordic.title == "北欧多国迎来今冬最强寒潮"
        assert nordic.summary == "瑞典和芬兰北部气温降至零下四十度以下，部分铁路线路暂停运营。"
        assert "瑞典和芬兰北部气温降至零下四十度以下" in content(nordic)
        assert "瑞典北部城市基律纳" not in content(nordic)  # the body is on the page only
        assert stamp(nordic.published_parsed) == datetime(2024, 1, 9, 8, 40, tzinfo=UTC)
        assert "nordic-cold.jpg" in content(nordic)  # the feed's image

        site.answer(B, None)  # RFI lets us in again
        second = refresh(root)  # but the page is backing off (5 minutes): not asked yet
        assert sorted((h.decoded, h.status) for h in site.take()) == sorted([(MAIN_FEED, 304), (CHINA_FEED, 304)])
        assert "瑞典北部城市基律纳" not in content(entries(root)[canonical(B)])
        assert second.stderr == ""

        clear_page_backoff(root, B)  # as if 5 minutes had passed
        third = refresh(root)
        hits = site.take()
        assert [(h.decoded, h.status) for h in page_hits(hits)] == [(B, 200)]
        assert counts(third.stdout, "rfi") == {"new": 0, "updated": 1, "unchanged": 0, "skipped": 0, "errors": 0}
        nordic = entries(root)[canonical(B)]
        assert "瑞典北部城市基律纳" in content(nordic)
        assert nordic.summary == "瑞典和芬兰北部气温降至零下四十度以下，部分铁路线路暂停运营。"
        assert third.stderr == ""


def later_feeds(site: FakeSite, *, china_changed: bool) -> None:
    """RFI an hour later: B has left the main feed, E's date moved and its page changed; B's page works again."""
    site.answer(MAIN_FEED, Answer(file="rss_main_later.xml"))
    if china_changed:
        site.answer(CHINA_FEED, Answer(file="rss_china.xml", revision="2"))
    site.answer(E, Answer(file="page_documentary_v2.html", content_type=HTML))
    site.answer(B, None)


def test_a_failed_page_is_not_retried_once_its_item_left_the_feeds_and_a_moved_item_is_fetched_again(
    tmp_path: Path,
) -> None:
    with fake_rfi(tmp_path) as (site, _):
        root = make_project(tmp_path / "project", site.origin)
        site.answer(B, Answer(403, {"Content-Type": "text/html"}, b"denied"))
        refresh(root)
        site.take()
        later_feeds(site, china_changed=True)
        clear_page_backoff(root, B)  # B is not held back by its backoff, only by having left the feeds
        result = refresh(root)
        hits = site.take()
        assert sorted((h.decoded, h.status) for h in hits) == sorted([(MAIN_FEED, 200), (CHINA_FEED, 200), (E, 200)])
        page = next(h for h in hits if h.decoded == E)
        assert page.headers.get("if-none-match", "").startswith('"')  # a conditional GET; the page changed
        assert result.stderr == ""
        documentary = entries(root)[canonical(E)]
        assert "影片将于三月在法国各地院线上映" in content(documentary)
        assert stamp(documentary.published_parsed) == datetime(2024, 1, 8, 11, 15, tzinfo=UTC)
        assert stamp(documentary.updated_parsed) == datetime(2024, 1, 8, 12, 20, tzinfo=UTC)
        assert canonical(B) in entries(root)  # an entry stays when its item leaves the feed


def test_a_failed_page_is_not_retried_once_its_item_left_the_feeds_while_another_feed_is_unchanged(
    tmp_path: Path,
) -> None:
    with fake_rfi(tmp_path) as (site, _):
        root = make_project(tmp_path / "project", site.origin)
        site.answer(B, Answer(403, {"Content-Type": "text/html"}, b"denied"))
        refresh(root)
        site.take()
        later_feeds(site, china_changed=False)  # the 中国 feed did not change: it answers 304
        clear_page_backoff(root, B)
        refresh(root)
        hits = site.take()
        assert sorted((h.decoded, h.status) for h in hits if h.decoded != CHINA_FEED) == sorted(
            [(MAIN_FEED, 200), (E, 200)]
        )


def test_a_failed_page_is_retried_while_its_only_feed_is_temporarily_broken(tmp_path: Path) -> None:
    with fake_rfi(tmp_path) as (site, _):
        root = make_project(tmp_path / "project", site.origin)
        site.answer(F, Answer(403, {"Content-Type": "text/html"}, b"denied"))  # F: only the 中国 feed lists it
        refresh(root)
        site.take()
        site.answer(F, None)
        site.answer(MAIN_FEED, Answer(file="rss_main_later.xml"))  # both feeds answer 200 …
        site.answer(CHINA_FEED, Answer(file="feed_malformed.xml"))  # … but the 中国 one is cut off mid-item
        clear_page_backoff(root, F)
        result = refresh(root)
        assert f"{canonical(CHINA_FEED)}: feed is not well-formed XML" in result.stderr
        assert F in {h.decoded for h in page_hits(site.take())}  # nothing says F left the 中国 feed


def retry_after_project(tmp_path: Path, site: FakeSite) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """Both feeds answer 429 with Retry-After: 3600; returns the project and its first refresh."""
    root = make_project(tmp_path / "project", site.origin)
    for path in (MAIN_FEED, CHINA_FEED):
        site.answer(path, Answer(429, {"Retry-After": "3600", "Content-Type": "text/plain"}, b"slow down"))
    first = refresh(root, expect=6)
    return root, first


def test_retry_after_is_respected_across_a_restart(tmp_path: Path) -> None:
    with fake_rfi(tmp_path) as (site, _):
        before = datetime.now(UTC).replace(microsecond=0)
        root, first = retry_after_project(tmp_path, site)
        assert sorted((h.decoded, h.status) for h in site.take()) == sorted([(MAIN_FEED, 429), (CHINA_FEED, 429)])
        assert "feeder: rfi: no feed could be read" in first.stderr
        assert counts(first.stdout, "seeds")["new"] == 3  # the seeds are still published
        assert set(entries(root)) == {canonical(p) for p in IN_SEEDS}

        second = refresh(root)  # a new process: the wait is in the state database; a skipped poll is no failure
        assert site.take() == []
        assert "rfi: poll skipped, asked to wait: www.rfi.fr is not to be asked before" in second.stdout
        assert "no feed could be read" not in second.stderr

        status = json.loads((root / "state" / "status.json").read_text(encoding="utf-8"))["sources"]["rfi"]
        assert (status["failure"], status["problems"], status["polls"], status["failed_polls"]) == (None, [], 2, 1)
        until = [datetime.fromisoformat(m) for m in re.findall(r"\d{4}-\d\d-\d\dT[\d:]+\+00:00", status["waiting"])]
        assert len(until) == 1  # both feeds are on one host: one wait
        assert before + timedelta(seconds=3590) <= until[0] <= before + timedelta(seconds=3700)
        shown = run_feeder(root / "config.yaml", "status", timeout=TIMEOUT).stdout
        assert "rfi: last poll" in shown
        assert "SKIPPED, asked to wait: www.rfi.fr is not to be asked before" in shown


def test_a_failed_rfi_poll_prints_why_each_feed_failed(tmp_path: Path) -> None:
    with fake_rfi(tmp_path) as (site, _):
        _, first = retry_after_project(tmp_path, site)
    assert f"{canonical(MAIN_FEED)}: cannot fetch" in first.stderr
    assert "HTTP 429" in first.stderr


def test_a_page_skipped_while_the_host_asks_to_wait_is_fetched_once_the_wait_is_over(tmp_path: Path) -> None:
    with fake_rfi(tmp_path) as (site, _):
        root = make_project(tmp_path / "project", site.origin)
        # pages are fetched newest first, two at a time: G (the newest) is refused at once while A is slow,
        # so every later page, H (seed-only) included, finds the host backing off and is never requested
        site.delay = 0.3
        site.answer(G, Answer(429, {"Retry-After": "3600"}, b"slow down", delay=0))
        first = refresh(root)
        requested = {h.decoded for h in page_hits(site.take())}
        assert G in requested
        assert H not in requested
        assert "HTTP 429, www.rfi.fr asks us to wait until" in first.stderr
        assert len(first.stderr.splitlines()) == 1  # one line for all the pages put off
        site.delay = 0
        site.answer(G, None)
        # as if the hour had passed: the host's wait and the pages' backoff are over (see clear_page_backoff)
        with sqlite3.connect(root / "state" / "feeder.sqlite3") as db:
            db.execute("UPDATE hosts SET next_allowed = NULL")
            db.execute("UPDATE pages SET next_try = NULL")
        refresh(root)
        assert H in {h.decoded for h in page_hits(site.take())}
        assert "冰雪大世界今年使用了约二十五万立方米的冰块" in content(entries(root)[canonical(H)])


def test_a_redirect_to_a_foreign_host_is_refused_and_one_within_rfi_followed(tmp_path: Path) -> None:
    with fake_rfi(tmp_path) as (site, foreign):
        root = make_project(tmp_path / "project", site.origin)
        foreign_port = urlsplit(foreign.origin).port
        site.answer(CHINA_FEED, Answer(302, {"Location": f"{foreign.origin}{quote(CHINA_FEED)}"}))
        site.answer(B, Answer(301, {"Location": f"{foreign.origin}{quote(B)}"}))
        site.answer(E, Answer(301, {"Location": canonical(E)}))  # to itself
        site.answer(D, Answer(301, {"Location": canonical(D) + "/"}))  # within RFI: followed, to the origin
        result = refresh(root)
        hits = site.take()
        assert foreign.take() == []
        assert f"redirected to foreign host 127.0.0.1:{foreign_port}, not followed" in result.stderr
        lines = [line for line in result.stderr.splitlines() if "foreign host" in line]
        assert len(lines) == 2
        assert any(canonical(CHINA_FEED) in line for line in lines)
        assert any(canonical(B) in line for line in lines)
        assert f"{canonical(E)}: cannot fetch {canonical(E)}: redirect loop" in result.stderr
        assert [h.status for h in hits if h.decoded == E] == [301]
        assert [h.status for h in hits if h.decoded.rstrip("/") == D] == [301, 200]
        atom = entries(root)
        assert "卡纳瓦雷博物馆" in content(atom[canonical(D)])
        assert "瑞典北部城市基律纳" not in content(atom[canonical(B)])
        assert atom[canonical(B)].summary.startswith("瑞典和芬兰北部")
        assert canonical(F) not in atom  # only the 中国 feed lists it, and that feed was not read
        assert set(atom) == {canonical(p) for p in (*IN_MAIN_FEED, H)}


def test_an_article_moved_to_a_new_url_stays_one_entry(tmp_path: Path) -> None:
    moved = "/cn/科技与文化/20240108-纪录片沙海驼铃首映"  # RFI edited the slug; the old URL answers 301
    with fake_rfi(tmp_path) as (site, _):
        root = make_project(tmp_path / "project", site.origin)
        page = (SITE / "page_documentary.html").read_text(encoding="utf-8").replace(quote(E), quote(moved))
        site.answer(E, Answer(301, {"Location": canonical(moved)}))
        site.answer(moved, Answer(200, {"Content-Type": HTML}, page.encode()))
        refresh(root)
    documentary = [e for e in entries(root).values() if e.title == "纪录片《沙海驼铃》在里昂首映"]
    assert len(documentary) == 1
    assert "影片的拍摄团队跟随驼队穿越沙漠与绿洲" in content(documentary[0])


def test_an_oversized_body_is_cut_with_a_clear_error(tmp_path: Path) -> None:
    with fake_rfi(tmp_path) as (site, _):
        http = "  max_page_bytes: 20000\n  max_feed_bytes: 100000\n"
        root = make_project(tmp_path / "project", site.origin, http=http)
        padding = "<p>" + "很长的正文。" * 4000 + "</p>"
        big_page = (SITE / "page_documentary.html").read_text(encoding="utf-8").replace("</article>", padding)
        site.answer(E, Answer(200, {"Content-Type": HTML}, big_page.encode()))  # with Content-Length
        site.answer(B, Answer(200, {"Content-Type": HTML}, big_page.encode(), content_length=False))
        bomb = gzip.compress(b"<html><body>" + b" " * 3_000_000 + b"</body></html>")  # 3 MB in a few KB
        site.answer(G, Answer(200, {"Content-Type": HTML, "Content-Encoding": "gzip"}, bomb))
        big_feed = (SITE / "rss_china.xml").read_bytes().replace(b"</channel>", b"<!--" + b"x" * 200_000 + b"-->")
        site.answer(CHINA_FEED, Answer(200, {"Content-Type": RSS}, big_feed))
        result = refresh(root)
        for path in (E, B, G):
            assert re.search(rf"{re.escape(canonical(path))}: .*the body exceeded 20000 bytes", result.stderr), path
        assert f"cannot fetch {canonical(CHINA_FEED)}: the body exceeded 100000 bytes" in result.stderr
        atom = entries(root)
        assert atom[canonical(E)].summary == "这部纪录片用三年时间跟拍一支沿古代商路行进的驼队。"
        assert "很长的正文" not in everything_written(root)
        assert "卡纳瓦雷博物馆" in content(atom[canonical(D)])  # pages under the cap are fine
        assert counts(result.stdout, "rfi")["errors"] == 4


HOSTILE_FEEDS = {
    "feed_xxe_file.xml": "file:///etc/passwd",
    "feed_xxe_canary.xml": "a file only an XXE could name",
    "feed_xxe_remote.xml": "parameter entity fetching a DTD from the foreign host",
    "feed_xxe_utf16.xml": "file:///etc/passwd, in UTF-16",
    "feed_billion_laughs.xml": "billion laughs",
}


@pytest.mark.parametrize("document", list(HOSTILE_FEEDS), ids=[n.removesuffix(".xml") for n in HOSTILE_FEEDS])
def test_a_hostile_feed_is_refused_while_the_rest_publishes(tmp_path: Path, document: str) -> None:
    with fake_rfi(tmp_path) as (site, foreign):
        root = make_project(tmp_path / "project", site.origin)
        site.answer(CHINA_FEED, Answer(file=document))
        started = time.monotonic()
        result = refresh(root)
        assert time.monotonic() - started < 15
        assert foreign.take() == []
    assert f"{canonical(CHINA_FEED)}: feed refused: its DOCTYPE declares entities" in result.stderr
    assert counts(result.stdout, "rfi")["errors"] == 1
    written = everything_written(root)
    for leak in (*PASSWD_MARKERS, CANARY_TEXT, "lollollol", "xxe-probe"):
        assert leak not in written, leak
    # the main feed, its pages and the seeds are all there; F (only in the 中国 feed) is not
    assert set(entries(root)) == {canonical(p) for p in (*IN_MAIN_FEED, H)}
    assert "志愿者们按照统一的方法清点鸟类数量" in content(entries(root)[canonical(A)])


def test_a_feed_naming_an_external_dtd_never_fetches_it(tmp_path: Path) -> None:
    with fake_rfi(tmp_path) as (site, foreign):
        root = make_project(tmp_path / "project", site.origin)
        site.answer(CHINA_FEED, Answer(file="feed_external_dtd.xml"))
        refresh(root)
        assert foreign.take() == []  # the DTD (which would define &xxe; as the canary file) was not loaded
    assert CANARY_TEXT not in everything_written(root)
    assert {canonical(p) for p in (*IN_MAIN_FEED, H)} <= set(entries(root))


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ("feed_malformed.xml", "feed is not well-formed XML"),
        ("feed_blocked.html", "an HTML page was served instead of a feed"),
    ],
    ids=["malformed", "html-block-page"],
)
def test_a_broken_feed_is_reported_while_the_other_sources_publish(tmp_path: Path, document: str, reason: str) -> None:
    with fake_rfi(tmp_path) as (site, _):
        root = make_project(tmp_path / "project", site.origin)
        kind = HTML if document.endswith(".html") else RSS
        site.answer(CHINA_FEED, Answer(file=document, content_type=kind))
        result = refresh(root)
    assert f"{canonical(CHINA_FEED)}: {reason}" in result.stderr
    assert counts(result.stdout, "seeds")["new"] == 3
    assert counts(result.stdout, "rfi")["errors"] == 1
    atom = entries(root)
    assert set(atom) == {canonical(p) for p in (*IN_MAIN_FEED, H)}
    assert "长江流域冬季水鸟调查结果公布" in {e.title for e in atom.values()}
    status = json.loads((root / "state" / "status.json").read_text(encoding="utf-8"))["sources"]["rfi"]
    assert status["failure"] is None
    assert [p["file"] for p in status["problems"]] == [canonical(CHINA_FEED)]
    assert reason in status["problems"][0]["reason"]


# Guards on the fixture itself ------------------------------------------------------------------------------


def test_the_fake_site_answers_conditional_requests() -> None:
    site = FakeSite(ROUTES)
    status, headers, body, _ = site.respond(MAIN_FEED, {})
    assert status == 200
    assert body.startswith(b"<?xml")
    assert site.respond(MAIN_FEED, {"if-none-match": headers["ETag"]})[0] == 304
    assert site.respond(MAIN_FEED, {"if-none-match": '"other"'})[0] == 200
    assert site.respond(MAIN_FEED, {"if-modified-since": headers["Last-Modified"]})[0] == 304
    assert site.respond(quote(MAIN_FEED) + "x", {})[0] == 404
    assert gzip.decompress(site.respond(A, {"accept-encoding": "gzip"})[2]) == (SITE / ROUTES[A][0]).read_bytes()


def test_every_feed_of_the_live_source_passes_the_w3c_validator_and_the_json_feed_rules(polled: Polled) -> None:
    public = polled.root / "public"
    validate_feeds(public, "http://127.0.0.1:8080/")
    check_json_feeds(public)
    nordic = content(entries(polled.root)[canonical(B)])
    assert "芬兰铁路公司宣布，部分北部线路暂停运营，直至气温回升。" in nordic  # the page's escapes and controls, gone
