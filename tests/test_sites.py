"""Sites as data: rules files loaded and checked, a made-up second site polled end to end, ``feeder site check``.

The second site, 海港日报 (gazette.example), exists only here: its rules file lives in the test's ``sites/``
folder, and its feed and article pages are served on 127.0.0.1 (its host routed there by ``origin``). Its pages
share nothing with RFI's: other class names, no JSON-LD, dates written in Chinese in Shanghai time, an alias
host and its own tracking parameters.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import feedparser
import pytest

from feeder.config import load_config, parse_config
from feeder.errors import ConfigError
from feeder.parse import parse_page
from feeder.pipeline import refresh
from feeder.sites import SHIPPED, load_site, load_sites
from feeder.store import Store
from tests.builders import NOW, config_text, run_feeder
from tests.feedcheck import check_json_feeds, validate_feeds
from tests.webserver import Documents, serving

DATA = Path(__file__).parent / "data" / "sites"

GAZETTE_RULES = (DATA / "gazette.yaml").read_text(encoding="utf-8")


def gazette_config(origin: str) -> str:
    return (
        "output_dir: public\n"
        "state_dir: state\n"
        "base_url: http://127.0.0.1:8080/\n"
        "sources:\n"
        f"  - {{name: gazette, kind: site, site: gazette, origin: '{origin}'}}\n"
        "feeds:\n"
        "  - {name: gazette, title: 海港日报, sources: [gazette]}\n"
    )


def gazette_site() -> Documents:
    documents = Documents()
    documents.put("/feed.xml", "application/rss+xml", (DATA / "gazette_feed.xml").read_bytes())
    documents.put("/world/2024/harbour-1", "text/html; charset=utf-8", (DATA / "gazette_harbour.html").read_bytes())
    documents.put("/city/2024/tram-2", "text/html; charset=utf-8", (DATA / "gazette_tram.html").read_bytes())
    return documents


def project(root: Path, config: str, rules: dict[str, str]) -> Path:
    (root / "sites").mkdir(parents=True, exist_ok=True)
    for name, text in rules.items():
        (root / "sites" / name).write_text(text, encoding="utf-8")
    path = root / "config.yaml"
    path.write_text(config, encoding="utf-8")
    return path


# -- the shipped rules


def test_rfi_is_described_by_its_shipped_rules_file() -> None:
    rfi = load_sites(None)["rfi-cn"]
    assert rfi.path == str(SHIPPED / "rfi-cn.yaml")
    assert rfi.hosts == {"www.rfi.fr"}
    assert rfi.feeds == ("https://www.rfi.fr/cn/rss",)
    assert str(rfi.timezone) == "Europe/Paris"
    assert rfi.article.is_article("https://www.rfi.fr/cn/%E4%B8%AD%E5%9B%BD/20240109-x")
    assert not rfi.article.is_article("https://www.rfi.fr/cn/%E4%B8%AD%E5%9B%BD/")


def test_a_users_file_with_a_shipped_name_replaces_it(tmp_path: Path) -> None:
    text = (SHIPPED / "rfi-cn.yaml").read_text(encoding="utf-8").replace("title: RFI 中文", "title: 我的 RFI")
    config = load_config(project(tmp_path, config_text(), {"mine.yaml": text}))
    assert config.site("rfi-cn").title == "我的 RFI"
    assert config.site("rfi-cn").digest != load_sites(None)["rfi-cn"].digest


# -- broken rules files: one clear line each, naming the file and the line


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("title: 海港日报", "title: [海港日报"), "gazette.yaml:3: not valid YAML"),
        (("language: zh-cn", "language: zh-cn\ncolour: blue"), "gazette.yaml:7: colour: unknown setting"),
        (("url: '^https", "url: '(^https"), "gazette.yaml:12: article.url: not a regular expression"),
        (("body: div.story", "body: 'div.story['"), "gazette.yaml:18: article.body: not a CSS selector"),
        (("remove: [.promo, .related]", "remove: [.promo, 'p::x']"), "gazette.yaml:19: article.remove[1]: not a CSS"),
        (("timezone: Asia/Shanghai", "timezone: Mars/Olympus"), "gazette.yaml:7: timezone: unknown time zone"),
        (("'%Y年%m月%d日 %H:%M'", "'%Y年%q'"), "gazette.yaml:20: article.date_format: date format '%Y年%q': %q"),
        (("hosts: [gazette.example]", "hosts: []"), "gazette.yaml:4: hosts: Tuple should have at least 1 item"),
        (
            ("{m.gazette.example: gazette.example}", "{m.gazette.example: other.example}"),
            "gazette.yaml:5: host_aliases: m.gazette.example leads to other.example, which is not one of hosts",
        ),
    ],
)
def test_a_broken_rules_file_is_one_clear_error(tmp_path: Path, change: tuple[str, str], expected: str) -> None:
    old, new = change
    assert old in GAZETTE_RULES
    path = project(tmp_path, gazette_config("http://127.0.0.1:9"), {"gazette.yaml": GAZETTE_RULES.replace(old, new)})
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert len(message.splitlines()) == 1, message
    assert message.startswith(str(tmp_path / "sites" / "gazette.yaml")), message
    assert expected in message, message


def test_the_command_line_says_the_same_and_exits_with_the_config_error_code(tmp_path: Path) -> None:
    broken = GAZETTE_RULES.replace("body: div.story", "body: 'div.story['")
    result = run_feeder(
        project(tmp_path, gazette_config("http://127.0.0.1:9"), {"gazette.yaml": broken}), "refresh", expect=3
    )
    assert f"feeder: {tmp_path / 'sites' / 'gazette.yaml'}:18: article.body: not a CSS selector" in result.stderr


def test_a_source_naming_an_unknown_site_is_refused_at_its_line(tmp_path: Path) -> None:
    text = config_text().replace("    path: seeds\n", "    path: seeds\n    site: nowhere\n")
    with pytest.raises(ConfigError, match=r"config\.yaml:8: sources\[0\]\.site: unknown site 'nowhere'"):
        parse_config(text, tmp_path / "config.yaml")


def test_two_files_of_one_name_in_one_folder_are_refused(tmp_path: Path) -> None:
    project(tmp_path, "", {"a.yaml": GAZETTE_RULES, "b.yaml": GAZETTE_RULES})
    with pytest.raises(ConfigError, match=r"b\.yaml: name: 'gazette' is also the name of .*a\.yaml"):
        load_sites(tmp_path / "sites")


# -- a second site, end to end


@pytest.fixture
def gazette(tmp_path: Path) -> Iterator[tuple[Path, Documents]]:
    with serving(gazette_site()) as documents:
        yield project(tmp_path, gazette_config(documents.origin), {"gazette.yaml": GAZETTE_RULES}), documents


def test_a_made_up_site_is_polled_by_its_rules_file_alone(gazette: tuple[Path, Documents]) -> None:
    path, documents = gazette
    config = load_config(path)
    with Store.open(config.state_dir / "feeder.sqlite3") as store:
        report = refresh(config, store, NOW)
    (source,) = report.sources
    assert (source.new, source.failure, source.problems, source.degraded) == (2, None, (), None)
    assert sorted(documents.take()) == ["/city/2024/tram-2", "/feed.xml", "/world/2024/harbour-1"]
    parsed = feedparser.parse(config.output_dir / "gazette.atom")
    by_id = {entry.id: entry for entry in parsed.entries}
    harbour = by_id["https://gazette.example/world/2024/harbour-1"]  # the alias host and ?ref=rss are gone
    assert harbour.title == "新码头今日启用"
    assert harbour.published == "2024-03-05T06:30:00+00:00"  # 14:30 in Shanghai, written in the page as text
    assert harbour.author == "林小雨"
    content = harbour.content[0].value
    assert "<strong>港口迎来第一艘货轮。</strong>" in content
    assert "码头长四百米" in content
    assert "工人们清晨五点开始作业" in content
    assert "订阅日报" not in content  # .promo
    assert "相关阅读" not in content  # .related
    assert "https://gazette.example/img/harbour.jpg" in content
    tram = by_id["https://gazette.example/city/2024/tram-2"]  # ?spm= dropped
    assert tram.published == "2024-03-04T01:00:00+00:00"  # the <time datetime> with its offset
    assert [t.term for t in tram.tags] == ["city", "2024"]
    assert (parsed.feed.author, parsed.feed.language) == ("海港日报社", "zh-cn")  # from the rules file
    assert (config.output_dir / "gazette" / "world.atom").is_file()  # section = first path segment
    validate_feeds(config.output_dir, "http://127.0.0.1:8080/")
    check_json_feeds(config.output_dir)


def test_editing_the_rules_file_brings_back_the_body_of_pages_already_fetched(
    gazette: tuple[Path, Documents],
) -> None:
    path, documents = gazette
    redesigned = (DATA / "gazette_harbour.html").read_text(encoding="utf-8").replace("story", "article-body")
    documents.put("/world/2024/harbour-1", "text/html; charset=utf-8", redesigned)
    config = load_config(path)
    with Store.open(config.state_dir / "feeder.sqlite3") as store:
        report = refresh(config, store, NOW)
    assert report.sources[0].degraded == "site gazette: body matched nothing on 1 of 2 pages"
    entry = {e.id: e for e in feedparser.parse(config.output_dir / "gazette.atom").entries}[
        "https://gazette.example/world/2024/harbour-1"
    ]
    assert "码头长四百米" not in entry.content[0].value  # the feed's lead, not an empty entry
    assert "港口迎来第一艘货轮" in entry.content[0].value
    (path.parent / "sites" / "gazette.yaml").write_text(
        GAZETTE_RULES.replace("body: div.story", "body: [div.story, div.article-body]"), encoding="utf-8"
    )
    documents.take()
    config = load_config(path)
    with Store.open(config.state_dir / "feeder.sqlite3") as store:
        report = refresh(config, store, NOW)
    assert report.sources[0].degraded is None
    assert sorted(documents.take()) == ["/city/2024/tram-2", "/feed.xml", "/world/2024/harbour-1"]
    entry = {e.id: e for e in feedparser.parse(config.output_dir / "gazette.atom").entries}[
        "https://gazette.example/world/2024/harbour-1"
    ]
    assert "码头长四百米" in entry.content[0].value


# -- feeder site check


def test_site_check_prints_what_each_rule_found(tmp_path: Path) -> None:
    path = project(tmp_path, gazette_config("http://127.0.0.1:9"), {"gazette.yaml": GAZETTE_RULES})
    page = DATA / "gazette_harbour.html"
    result = run_feeder(
        path, "site", "check", "gazette", str(page), "--url", "https://gazette.example/world/2024/harbour-1"
    )
    lines = result.stdout.splitlines()
    assert lines[0] == f"site gazette ({tmp_path / 'sites' / 'gazette.yaml'}) on {page}"
    assert "  title      新码头今日启用   [css: article h1.headline]" in lines
    assert "  published  2024-03-05T06:30:00+00:00   [css: time.published]" in lines
    assert "  section    world   [section rule]" in lines
    assert "  author     林小雨   [css: .byline .name]" in lines
    assert any(line.startswith("  body       ") and line.endswith("[css: div.story]") for line in lines)
    assert "  removed    .promo: 1  (订阅日报，每天早上送达)" in lines
    assert not any(line.startswith("missing:") for line in lines)


def test_site_check_fetches_a_url_and_exits_6_when_the_body_is_missing(tmp_path: Path) -> None:
    redesigned = (DATA / "gazette_harbour.html").read_text(encoding="utf-8").replace("story", "article-body")
    path = project(tmp_path, gazette_config("http://127.0.0.1:9"), {"gazette.yaml": GAZETTE_RULES})
    with serving(Documents({"/world/2024/harbour-1": ("text/html", redesigned)})) as documents:
        url = documents.origin + "/world/2024/harbour-1"
        result = run_feeder(path, "site", "check", "gazette", url, expect=6)
    assert "  body       -" in result.stdout
    assert "missing: body: no rule for it found anything on this page" in result.stdout
    assert "  title      新码头今日启用   [css: article h1.headline]" in result.stdout


def test_site_check_names_an_unknown_site(tmp_path: Path) -> None:
    path = project(tmp_path, config_text(), {})
    result = run_feeder(path, "site", "check", "nowhere", "page.html", expect=3)
    assert "feeder: unknown site 'nowhere' (known: rfi-cn)" in result.stderr


def test_the_rules_load_the_same_from_a_file_and_from_the_folder(tmp_path: Path) -> None:
    project(tmp_path, "", {"gazette.yaml": GAZETTE_RULES})
    alone = load_site(tmp_path / "sites" / "gazette.yaml")
    assert load_sites(tmp_path / "sites")["gazette"] == alone
    shutil.rmtree(tmp_path / "sites")
    assert "gazette" not in load_sites(tmp_path / "sites")  # a missing folder is no error: nothing of the user's


# -- RFI redesigns its pages: an edit of the rules file in sites_dir is the whole fix

RFI_DATA = Path(__file__).parent / "data"
RFI_PAGES = {
    "/cn/中国/20240109-长江流域冬季水鸟调查结果公布": "rfi/page_article.html",
    "/cn/中国/20240108-上海图书馆东馆推出夜间阅读活动": "rfi/page_two_articles.html",
    "/cn/中国/20240107-昆明植物园举办冬季山茶花展": "rfi_site/page_kunming_gbk.html",
}


def redesigned_rfi() -> Documents:
    """RFI's 中国 feed and its three articles, the pages' t-content__ classes renamed t-story__."""
    documents = Documents()
    documents.put("/cn/中国/rss", "application/rss+xml", (RFI_DATA / "rfi_site" / "rss_china.xml").read_bytes())
    for path, name in RFI_PAGES.items():
        page = (RFI_DATA / name).read_bytes().replace(b"t-content__", b"t-story__")
        assert b"t-story__body" in page
        documents.put(path, "text/html" if "gbk" in name else "text/html; charset=utf-8", page)
    return documents


def rfi_config(origin: str) -> str:
    return (
        "output_dir: public\n"
        "state_dir: state\n"
        "base_url: http://127.0.0.1:8080/\n"
        "sources:\n"
        f"  - {{name: rfi, kind: site, site: rfi-cn, origin: '{origin}', feeds: ['https://www.rfi.fr/cn/%E4%B8%AD%E5%9B%BD/rss']}}\n"
        "feeds:\n"
        "  - {name: rfi-cn, title: RFI 中文, sources: [rfi]}\n"
    )


def test_a_redesign_is_reported_and_fixed_by_editing_the_rules_file_only(tmp_path: Path) -> None:
    with serving(redesigned_rfi()) as documents:
        path = project(tmp_path, rfi_config(documents.origin), {})
        first = run_feeder(path, "refresh")
        stale = "site rfi-cn: body matched nothing on 3 of 3 pages"
        assert f"feeder: rfi: degraded: {stale}; 3 of 3 article pages had an empty" in first.stderr
        status = json.loads(run_feeder(path, "status", "--json").stdout)
        assert stale in status["sources"]["rfi"]["degraded"]
        assert stale in run_feeder(path, "status").stdout
        entries = feedparser.parse(tmp_path / "public" / "rfi-cn.atom").entries
        assert len(entries) == 3
        assert [entry.content[0].value.count("<p>") for entry in entries] == [1, 1, 1]  # the feed's lead, no body

        shipped = (SHIPPED / "rfi-cn.yaml").read_text(encoding="utf-8")
        (tmp_path / "sites" / "rfi-cn.yaml").write_text(shipped.replace("t-content__", "t-story__"), encoding="utf-8")
        documents.take()
        second = run_feeder(path, "refresh")
        assert "degraded" not in second.stderr
        assert sorted(documents.take()) == sorted(["/cn/中国/rss", *RFI_PAGES])  # each page read again
    status = json.loads(run_feeder(path, "status", "--json").stdout)
    assert status["sources"]["rfi"]["degraded"] is None
    bodies = {e.id: e.content[0].value for e in feedparser.parse(tmp_path / "public" / "rfi-cn.atom").entries}
    kunming = "https://www.rfi.fr/cn/%E4%B8%AD%E5%9B%BD/20240107-%E6%98%86%E6%98%8E%E6%A4%8D%E7%89%A9%E5%9B%AD%E4%B8%BE%E5%8A%9E%E5%86%AC%E5%AD%A3%E5%B1%B1%E8%8C%B6%E8%8A%B1%E5%B1%95"
    assert "昆明植物园" in bodies[kunming]
    assert all(body.count("<p>") >= 3 for body in bodies.values()), bodies  # the lead and the body's paragraphs


def test_a_json_ld_pick_works_without_json_ld_first(tmp_path: Path) -> None:
    rules = (
        "name: ld\ntitle: LD\nhosts: [www.rfi.fr]\n"
        "article:\n  title: [h2.none, {json_ld: headline}]\n  body: .t-content__body\n"
    )
    project(tmp_path, "", {"ld.yaml": rules})
    site = load_site(tmp_path / "sites" / "ld.yaml")
    page = (RFI_DATA / "rfi" / "page_article.html").read_text(encoding="utf-8")
    article = parse_page(page, "https://www.rfi.fr/cn/x/20240109-y", "page", site)
    assert article.title == "长江流域冬季水鸟调查结果公布"
    assert article.published_at is None  # json_ld: false puts no JSON-LD pick first
