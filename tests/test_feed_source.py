"""``kind: feed``: any feed on the web as a source — Atom, RSS 1.0 and JSON Feed served on 127.0.0.1, article
pages read whole by ``fulltext: auto``, and the same article from two feeds and a seed file kept as one entry."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import feedparser
import pytest

from feeder.config import Config, load_config
from feeder.http import Fetcher
from feeder.models import Fetched, HostState, Validators
from feeder.pipeline import refresh
from feeder.sources.interface import open_source
from feeder.store import Store
from tests.builders import NOW, seed_text, write_seed
from tests.feedcheck import check_json_feeds, validate_feeds
from tests.webserver import Documents, serving

DATA = Path(__file__).parent / "data" / "feed_source"
FEEDS = {"/atom.xml": "application/atom+xml", "/rss1.rdf": "application/rdf+xml", "/feed.json": "application/feed+json"}
PAGES = {
    "/stories/night-market": "night-market.html",
    "/stories/ferry": "ferry.html",
    "/stories/library": "library.html",
}
BIRDS = "https://www.rfi.fr/cn/%E4%B8%AD%E5%9B%BD/20240109-%E9%95%BF%E6%B1%9F%E6%B5%81%E5%9F%9F%E5%86%AC%E5%AD%A3%E6%B0%B4%E9%B8%9F%E8%B0%83%E6%9F%A5%E7%BB%93%E6%9E%9C%E5%85%AC%E5%B8%83"


def riverside() -> Documents:
    return Documents({path: ("text/html; charset=utf-8", (DATA / name).read_bytes()) for path, name in PAGES.items()})


@pytest.fixture
def weekly(tmp_path: Path) -> Iterator[tuple[Config, Documents]]:
    with serving(riverside()) as documents:
        for path, kind in FEEDS.items():
            text = (DATA / path.lstrip("/")).read_text(encoding="utf-8").replace("__ORIGIN__", documents.origin)
            documents.put(path, kind, text)
        write_seed(
            tmp_path / "seeds",
            "001_b000000000000001.txt",
            seed_text(BIRDS + "?utm_source=x", "长江流域冬季水鸟调查结果公布"),
        )
        origin = documents.origin
        (tmp_path / "config.yaml").write_text(
            "output_dir: public\n"
            "state_dir: state\n"
            "base_url: http://127.0.0.1:8080/\n"
            "sources:\n"
            "  - {name: seeds, kind: seeds, path: seeds}\n"
            f"  - {{name: atom, kind: feed, url: '{origin}/atom.xml', hosts: [www.rfi.fr]}}\n"
            f"  - {{name: rdf, kind: feed, url: '{origin}/rss1.rdf', fulltext: auto}}\n"
            f"  - {{name: json, kind: feed, url: '{origin}/feed.json', fulltext: auto}}\n"
            "feeds:\n"
            "  - {name: riverside, title: 河畔周刊, sources: [seeds, atom, rdf, json], language: zh-cn}\n",
            encoding="utf-8",
        )
        yield load_config(tmp_path / "config.yaml"), documents


def entries(config: Config) -> dict[str, feedparser.FeedParserDict]:
    return {entry.id: entry for entry in feedparser.parse(config.output_dir / "riverside.atom").entries}


def test_atom_rss1_and_json_feeds_become_one_deduplicated_feed(weekly: tuple[Config, Documents]) -> None:
    config, documents = weekly
    with Store.open(config.state_dir / "feeder.sqlite3") as store:
        report = refresh(config, store, NOW)
    assert {s.source: (s.new, s.failure, s.problems) for s in report.sources} == {
        "seeds": (1, None, ()),
        "atom": (1, None, ()),  # the RFI article is the seed's: one entry, canonical by the rfi-cn rules
        "rdf": (1, None, ()),
        "json": (1, None, ()),  # the night market is atom's
    }
    assert sorted(documents.take()) == sorted([*FEEDS, "/stories/ferry", "/stories/library", "/stories/night-market"])
    found = entries(config)
    own = "https://" + documents.origin.removeprefix("http://")
    assert sorted(found) == sorted(
        [BIRDS, f"{own}/stories/night-market", f"{own}/stories/ferry", f"{own}/stories/library"]
    )
    market = found[f"{own}/stories/night-market"]  # ?utm_source=atom dropped
    assert market.author == "陈佳"
    assert market.published == "2024-04-02T08:00:00+00:00"
    body = market.content[0].value
    assert "六十多个摊位沿着河边一字排开" in body  # the page's text, read by fulltext: auto
    assert "有关部门表示" in body
    for furniture in ("首页", "热门文章", "网友甲", "版权所有", "分享到微博"):
        assert furniture not in body
    ferry = found[f"{own}/stories/ferry"]  # RSS 1.0
    assert (ferry.author, ferry.published) == ("王磊", "2024-03-31T22:30:00+00:00")
    assert "首班船六点半出发" in ferry.content[0].value
    assert "每周五晚间开放到十点" in found[f"{own}/stories/library"].content[0].value  # JSON Feed
    birds = found[BIRDS]
    assert birds.title == "长江流域冬季水鸟调查结果公布"  # the seed's version, with its body, wins over a lead
    validate_feeds(config.output_dir, "http://127.0.0.1:8080/")
    check_json_feeds(config.output_dir)


def test_a_second_poll_fetches_no_page_again(weekly: tuple[Config, Documents]) -> None:
    config, documents = weekly
    with Store.open(config.state_dir / "feeder.sqlite3") as store:
        refresh(config, store, NOW)
        documents.take()
        report = refresh(config, store, NOW)
    assert sorted(documents.take()) == sorted(FEEDS)
    assert all(s.new == 0 and s.updated == 0 for s in report.sources)


def test_a_poll_writes_back_only_the_hosts_it_learnt_about(
    weekly: tuple[Config, Documents], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Workers poll side by side on PostgreSQL: a poll must not put back its own early copy of a host that
    another poll has news of since (here a backoff, written while this one was fetching)."""
    config, _ = weekly
    news = HostState(next_allowed=NOW + timedelta(hours=1), failures=2)
    with Store.open(config.state_dir / "feeder.sqlite3") as store:
        with store.transaction():
            store.save_hosts({"elsewhere.example": HostState(failures=1)})

        class Meanwhile(Fetcher):
            async def fetch(self, url: str, *, validators: Validators | None = None, max_bytes: int) -> Fetched:
                with store.transaction():
                    store.save_hosts({"elsewhere.example": news})  # another worker's poll, while this one runs
                return await super().fetch(url, validators=validators, max_bytes=max_bytes)

        monkeypatch.setattr("feeder.sources.web.Fetcher", Meanwhile)
        (atom,) = [s for s in config.sources if s.name == "atom"]
        report = open_source(atom, config).poll(store, NOW)
        assert (report.new, report.failure) == (2, None)
        assert store.hosts()["elsewhere.example"] == news


def test_an_item_on_a_host_the_source_does_not_allow_is_a_problem_not_an_entry(
    weekly: tuple[Config, Documents],
) -> None:
    config, documents = weekly
    atom = (DATA / "atom.xml").read_text(encoding="utf-8").replace("__ORIGIN__", documents.origin)
    documents.put(
        "/atom.xml", FEEDS["/atom.xml"], atom.replace("https://www.rfi.fr/cn/", "https://www.rfi.fr.example.net/cn/")
    )
    with Store.open(config.state_dir / "feeder.sqlite3") as store:
        report = refresh(config, store, NOW)
    (atom_report,) = [s for s in report.sources if s.source == "atom"]
    (problem,) = atom_report.problems
    assert "host 'www.rfi.fr.example.net' is not an allowed host" in problem.reason
    assert not any("example.net" in entry_id for entry_id in entries(config))


def test_fulltext_site_reads_pages_by_the_rules_of_the_site_that_holds_their_host(tmp_path: Path) -> None:
    rules = (
        "name: riverside\n"
        "title: 河畔周刊\n"
        "hosts: ['127.0.0.1']\n"
        "article:\n"
        "  url: '/stories/'\n"
        "  title: article h1\n"
        "  published: {css: 'meta[property=\"article:published_time\"]', attr: content}\n"
        "  body: article\n"
        "  remove: [h1]\n"
    )
    (tmp_path / "sites").mkdir()
    (tmp_path / "sites" / "riverside.yaml").write_text(rules, encoding="utf-8")
    with serving(riverside()) as documents:
        text = (DATA / "rss1.rdf").read_text(encoding="utf-8").replace("__ORIGIN__", documents.origin)
        documents.put("/rss1.rdf", FEEDS["/rss1.rdf"], text)
        (tmp_path / "config.yaml").write_text(
            "output_dir: public\nstate_dir: state\nbase_url: http://127.0.0.1:8080/\nsources:\n"
            f"  - {{name: rdf, kind: feed, url: '{documents.origin}/rss1.rdf', fulltext: site}}\n"
            "feeds:\n  - {name: riverside, title: 河畔周刊, sources: [rdf]}\n",
            encoding="utf-8",
        )
        config = load_config(tmp_path / "config.yaml")
        with Store.open(config.state_dir / "feeder.sqlite3") as store:
            report = refresh(config, store, NOW)
        assert sorted(documents.take()) == ["/rss1.rdf", "/stories/ferry"]
    assert (report.sources[0].new, report.sources[0].problems, report.sources[0].degraded) == (1, (), None)
    (entry,) = entries(config).values()
    body = entry.content[0].value
    assert "单程只需十五分钟" in body  # the <article>, by the riverside rules
    assert "<h1>" not in body
    assert "热门文章" not in body
    assert entry.published == "2024-03-31T22:30:00+00:00"
    assert feedparser.parse(config.output_dir / "riverside.atom").feed.language == "en"  # no site's language
