"""End-to-end: the real ``feeder`` command in a subprocess, on temporary folders, output read back.

Every test writes a config.yaml and a seeds/ folder under tmp_path, runs
``python -m feeder refresh|check`` there (a new process each time, so every run
is also a restart) and reads what it published with feedparser, json, XML and
``sfeed``. The child runs with TZ set far from UTC so a local-time bug shows.
"""

from __future__ import annotations

import calendar
import gzip
import json
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote
from zoneinfo import ZoneInfo

import feedparser
import pytest
import yaml

from tests.builders import config_text, run_feeder, seed_text, write_seed

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
FEED = "rfi-cn"
BASE_URL = "http://127.0.0.1:8080/"
OUTPUTS = (f"{FEED}.atom", f"{FEED}.rss", f"{FEED}.json", "index.html", "feeds.opml")
TIMEOUT = 60
CHINA = "https://www.rfi.fr/cn/%E4%B8%AD%E5%9B%BD/"
PARIS = ZoneInfo("Europe/Paris")
# Not a real article time: the mtime given to files whose own times are missing or incredible.
FILE_MTIME = datetime(2024, 3, 3, 3, 3, 3, tzinfo=UTC)


# Running the command ---------------------------------------------------------------------------------------


def feeder(root: Path, *args: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
    """Run ``python -m feeder <args> --config root/config.yaml`` in ``root`` and check its exit code."""
    return run_feeder(root / "config.yaml", *args, expect=expect, timeout=TIMEOUT)


def refresh(root: Path, expect: int = 0) -> subprocess.CompletedProcess[str]:
    return feeder(root, "refresh", expect=expect)


def make_site(root: Path, text: str | None = None, database: str | None = None) -> Path:
    """A folder with a config.yaml (tests.builders.config_text by default) and an empty seeds/; with
    ``database``, the state is in that PostgreSQL database."""
    (root / "seeds").mkdir(parents=True, exist_ok=True)
    text = config_text() if text is None else text
    (root / "config.yaml").write_text(text + (f"database: '{database}'\n" if database else ""), encoding="utf-8")
    return root


@pytest.fixture(params=["sqlite", "postgres"])
def state(request: pytest.FixtureRequest) -> str | None:
    """Where a test's state is: None for the SQLite file in state_dir, then a PostgreSQL database's URL."""
    return str(request.getfixturevalue("postgres_url")) if request.param == "postgres" else None


def article_url(slug: str) -> str:
    return f"{CHINA}20240109-{slug}"


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


# Reading the output ----------------------------------------------------------------------------------------


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file in ``folder``: its bytes and st_mtime_ns."""
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir()) if p.is_file()}


def read_feed(path: Path) -> Any:
    parsed = feedparser.parse(path.read_bytes())
    assert parsed.bozo == 0, f"{path.name}: {parsed.get('bozo_exception')}"
    return parsed


def stamp(struct: Any) -> datetime:
    """feedparser's UTC struct_time as an aware datetime."""
    return datetime.fromtimestamp(calendar.timegm(struct), UTC)


def atom_entries(root: Path) -> dict[str, dict[str, Any]]:
    """{id: {title, published, updated, content}} from the published Atom file, in feed order."""
    return {
        e.id: {
            "title": e.title,
            "published": stamp(e.published_parsed),
            "updated": stamp(e.updated_parsed),
            "content": e.content[0].value,
        }
        for e in read_feed(root / "public" / f"{FEED}.atom").entries
    }


def paris(text: str) -> datetime:
    """A seed's date line (Paris wall clock) in UTC."""
    return datetime.strptime(text, "%d/%m/%Y - %H:%M").replace(tzinfo=PARIS).astimezone(UTC)


# The bundled seeds ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def bundled(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """The repository's seeds/ and config.yaml, copied and refreshed once (on SQLite, then on PostgreSQL)."""
    root = tmp_path_factory.mktemp("bundled")
    shutil.copytree(ROOT / "seeds", root / "seeds")
    shutil.copy(ROOT / "config.yaml", root / "config.yaml")
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_server").new_database()
        with (root / "config.yaml").open("a", encoding="utf-8") as config:
            config.write(f"database: '{url}'\n")
    return root, refresh(root)


@pytest.fixture(scope="module")
def bundled_versions() -> dict[str, list[tuple[datetime, datetime]]]:
    """Read the bundled seed files directly: {title: [(date line as UTC, scrape time), …]}."""
    versions: dict[str, list[tuple[datetime, datetime]]] = {}
    for path in sorted((ROOT / "seeds").glob("*.txt")):
        lines = path.read_text(encoding="utf-8").splitlines()
        scraped = re.fullmatch(r"<!--(\d{13})-->", lines[0])
        title = re.fullmatch(r"\[(.*)\]\((\S+)\)", lines[1])
        date = re.match(r"<div>(\d\d/\d\d/\d{4} - \d\d:\d\d)</div>", lines[4])
        assert scraped, f"{path.name}: line 1 is not a scrape time"
        assert title, f"{path.name}: line 2 is not a [title](url) link"
        assert date, f"{path.name}: the HTML does not start with a date line"
        scrape_time = datetime.fromtimestamp(int(scraped.group(1)) / 1000, UTC)
        versions.setdefault(title.group(1), []).append((paris(date.group(1)), scrape_time))
    return versions


def test_bundled_refresh_writes_every_file_with_an_identical_gzip_sibling(bundled: tuple[Path, Any]) -> None:
    root, result = bundled
    public = root / "public"
    for name in OUTPUTS:
        assert (public / name).is_file(), name
        assert gzip.decompress((public / f"{name}.gz").read_bytes()) == (public / name).read_bytes(), name
        assert f"wrote public/{name}" in result.stdout
    assert result.stderr == ""


def test_bundled_atom_and_rss_parse_cleanly_and_list_the_same_entries(bundled: tuple[Path, Any]) -> None:
    root, _ = bundled
    atom = read_feed(root / "public" / f"{FEED}.atom")
    rss = read_feed(root / "public" / f"{FEED}.rss")
    assert atom.version == "atom10"
    assert rss.version == "rss20"
    for feed in (atom, rss):
        for entry in feed.entries:
            for key in ("id", "link", "title", "published"):
                assert entry.get(key), f"{feed.version}: {key} missing in {entry.get('id')}"
        ids = [e.id for e in feed.entries]
        assert len(ids) == 9
        assert len(set(ids)) == len(ids)
        assert ids == [e.link for e in feed.entries]
        assert all(i.startswith("https://www.rfi.fr/cn/") for i in ids)
        published = [stamp(e.published_parsed) for e in feed.entries]
        assert published == sorted(published, reverse=True), "not newest first"
    assert all(dict.__contains__(e, "updated") for e in atom.entries)
    assert [e.id for e in atom.entries] == [e.id for e in rss.entries]
    assert [e.title for e in atom.entries] == [e.title for e in rss.entries]
    assert [e.published_parsed for e in atom.entries] == [e.published_parsed for e in rss.entries]
    self_links = [link.href for link in atom.feed.links if link.rel == "self"]
    assert self_links == [f"{BASE_URL}{FEED}.atom"]


def test_bundled_rss_items_carry_their_updated_time(bundled: tuple[Path, Any]) -> None:
    root, _ = bundled
    atom = atom_entries(root)
    rss = read_feed(root / "public" / f"{FEED}.rss")
    assert all(dict.__contains__(e, "updated_parsed") for e in rss.entries)
    assert [stamp(e.updated_parsed) for e in rss.entries] == [e["updated"] for e in atom.values()]


def test_bundled_json_feed_has_the_same_entries(bundled: tuple[Path, Any]) -> None:
    root, _ = bundled
    document = json.loads((root / "public" / f"{FEED}.json").read_text(encoding="utf-8"))
    atom = atom_entries(root)
    assert document["version"] == "https://jsonfeed.org/version/1.1"
    assert document["feed_url"] == f"{BASE_URL}{FEED}.json"
    assert [item["id"] for item in document["items"]] == list(atom)
    for item in document["items"]:
        assert item["url"] == item["id"]
        assert item["title"] == atom[item["id"]]["title"]
        assert datetime.fromisoformat(item["date_published"]) == atom[item["id"]]["published"]
        assert datetime.fromisoformat(item["date_modified"]) == atom[item["id"]]["updated"]


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "link":
            self.links.append(dict(attrs))


def test_bundled_index_and_opml_point_at_the_feed(bundled: tuple[Path, Any]) -> None:
    root, _ = bundled
    config = yaml.safe_load((root / "config.yaml").read_text(encoding="utf-8"))
    base_url, title = config["base_url"], config["feeds"][0]["title"]
    feed_url = f"{base_url}{FEED}.atom"

    index = (root / "public" / "index.html").read_text(encoding="utf-8")
    assert '<link rel="alternate" type="application/atom+xml"' in index
    parser = _Links()
    parser.feed(index)
    alternates = {(link["type"], link["href"]) for link in parser.links if link.get("rel") == "alternate"}
    assert ("application/atom+xml", feed_url) in alternates
    assert ("application/rss+xml", f"{base_url}{FEED}.rss") in alternates
    assert ("application/feed+json", f"{base_url}{FEED}.json") in alternates
    for _, href in alternates:
        assert href is not None
        assert (root / "public" / unquote(href.removeprefix(base_url))).is_file(), href

    opml = ET.fromstring((root / "public" / "feeds.opml").read_bytes())
    assert opml.tag == "opml"
    outlines = [(o.get("xmlUrl"), o.get("title")) for o in opml.iter("outline")]
    assert outlines[0] == (feed_url, title)
    sections = ["中国", "亚洲", "国际", "法国", "港澳台", "科技与文化", "经贸"]
    assert sorted(outlines[1:]) == sorted(
        (f"{base_url}{FEED}/{quote(section)}.atom", f"{title} · {section}") for section in sections
    )
    for url, _ in outlines:
        assert url is not None
        assert (root / "public" / unquote(url.removeprefix(base_url))).is_file(), url


def test_bundled_dates_are_the_seeds_own_times(
    bundled: tuple[Path, Any], bundled_versions: dict[str, list[tuple[datetime, datetime]]]
) -> None:
    root, _ = bundled
    entries = atom_entries(root)
    assert sorted(e["title"] for e in entries.values()) == sorted(bundled_versions)
    now = datetime.now(UTC)
    for entry in entries.values():
        versions = bundled_versions[entry["title"]]
        # published: the date line; updated: the newest version's scrape time (the duplicate's text differs).
        assert entry["published"] == min(date for date, _ in versions), entry["title"]
        assert entry["updated"] == max(scraped for _, scraped in versions), entry["title"]
        for moment in (entry["published"], entry["updated"]):
            assert datetime(2024, 1, 1, tzinfo=UTC) <= moment < datetime(2025, 1, 1, tzinfo=UTC)
            assert abs(now - moment) > timedelta(days=1)


def test_bundled_content_has_no_page_furniture(bundled: tuple[Path, Any]) -> None:
    root, _ = bundled
    for entry in atom_entries(root).values():
        content = entry["content"]
        assert "<p>" in content
        for furniture in ("rfi.my", "facebook.com", "whatsapp", "share-button", "share-modal", "selfpromo", "分享 :"):
            assert furniture not in content, (furniture, entry["title"])


# sfeed ------------------------------------------------------------------------------------------------------


@pytest.fixture
def sfeed() -> str:
    found = shutil.which("sfeed") or ("/usr/bin/sfeed" if Path("/usr/bin/sfeed").is_file() else None)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("sfeed is not installed: apt-get install sfeed")
        pytest.skip("sfeed is not installed (apt-get install sfeed)")
    return found


@pytest.mark.parametrize("kind", ["atom", "rss"])
def test_sfeed_reads_every_entry(bundled: tuple[Path, Any], sfeed: str, kind: str) -> None:
    root, _ = bundled
    path = root / "public" / f"{FEED}.{kind}"
    output = subprocess.run([sfeed], input=path.read_bytes(), capture_output=True, timeout=TIMEOUT, check=True)
    rows = [line.split("\t") for line in output.stdout.decode("utf-8").splitlines()]
    entries = read_feed(path).entries
    assert len(rows) == len(entries) == 9
    for row, entry in zip(rows, entries, strict=True):
        timestamp, title, link, content, content_type, entry_id = row[:6]
        assert int(timestamp) == calendar.timegm(entry.published_parsed)
        assert title == entry.title
        assert link == entry.link
        assert entry_id == entry.id == link
        assert content_type == "html"
        assert "<p>" in content
        assert "rfi.my" not in content
        if len(row) > 8:
            assert row[8].split("|") == [tag.term for tag in entry.tags]


# Identity and versions ------------------------------------------------------------------------------------


def test_spellings_of_one_url_are_one_entry(tmp_path: Path, state: str | None) -> None:
    root = make_site(tmp_path, database=state)
    path = "www.rfi.fr/cn/%E4%B8%AD%E5%9B%BD/20240109-%E7%A4%BA%E4%BE%8B"
    spellings = [
        f"https://{path}",
        f"http://{path}",
        "https://www.rfi.fr/cn/中国/20240109-示例",
        "https://www.rfi.fr/cn/%e4%b8%ad%e5%9b%bd/20240109-%e7%a4%ba%e4%be%8b",
        f"https://{path}?xtor=RSS-1&utm_source=rss_feed&utm_medium=feed",
        f"https://{path}#comments",
        f"https://{path}/",
        "http://www.rfi.fr/cn/中国/20240109-示例/?xtor=RSS-1#top",
    ]
    for number, url in enumerate(spellings):
        write_seed(root / "seeds", f"{number:03d}_{number:016x}.txt", seed_text(url))
    result = refresh(root)
    assert "1 new" in result.stdout
    for kind in ("atom", "rss"):
        entries = read_feed(root / "public" / f"{FEED}.{kind}").entries
        assert [(e.id, e.link) for e in entries] == [(f"https://{path}", f"https://{path}")]
    document = json.loads((root / "public" / f"{FEED}.json").read_text(encoding="utf-8"))
    assert [item["id"] for item in document["items"]] == [f"https://{path}"]


OLD_SCRAPE = datetime(2024, 1, 9, 9, 15, 1, tzinfo=UTC)
NEW_SCRAPE = datetime(2024, 1, 9, 14, 40, 0, tzinfo=UTC)
PUBLISHED = paris("09/01/2024 - 10:05")
OLD = seed_text(title="旧标题", scraped_ms=ms(OLD_SCRAPE), body="<p>旧的正文。</p>")
NEW = seed_text(title="新标题", scraped_ms=ms(NEW_SCRAPE), body="<p>更新后的正文。</p><p>新增一段。</p>")


@pytest.mark.parametrize("same_file", [False, True], ids=["new-file", "rewritten-file"])
def test_newer_version_replaces_older(tmp_path: Path, same_file: bool, state: str | None) -> None:
    root = make_site(tmp_path, database=state)
    write_seed(root / "seeds", "001_aaaaaaaaaaaaaaaa.txt", OLD)
    refresh(root)
    [(entry_id, before)] = atom_entries(root).items()
    assert (before["title"], before["published"], before["updated"]) == ("旧标题", PUBLISHED, OLD_SCRAPE)

    write_seed(root / "seeds", "001_aaaaaaaaaaaaaaaa.txt" if same_file else "002_bbbbbbbbbbbbbbbb.txt", NEW)
    result = refresh(root)
    assert "1 updated" in result.stdout
    assert f"wrote public/{FEED}.atom" in result.stdout
    [(after_id, after)] = atom_entries(root).items()
    assert after_id == entry_id == article_url("example-article")
    assert after["title"] == "新标题"
    assert "更新后的正文" in after["content"]
    assert "旧的正文" not in after["content"]
    assert after["published"] == PUBLISHED
    assert after["updated"] == NEW_SCRAPE
    [item] = json.loads((root / "public" / f"{FEED}.json").read_text(encoding="utf-8"))["items"]
    assert item["title"] == "新标题"
    assert datetime.fromisoformat(item["date_modified"]) == NEW_SCRAPE


@pytest.mark.parametrize("same_file", [False, True], ids=["new-file", "rewritten-file"])
def test_older_version_after_newer_changes_nothing(tmp_path: Path, same_file: bool, state: str | None) -> None:
    root = make_site(tmp_path, database=state)
    write_seed(root / "seeds", "002_bbbbbbbbbbbbbbbb.txt", NEW)
    refresh(root)
    before = snapshot(root / "public")

    write_seed(root / "seeds", "002_bbbbbbbbbbbbbbbb.txt" if same_file else "001_aaaaaaaaaaaaaaaa.txt", OLD)
    result = refresh(root)
    assert "wrote" not in result.stdout
    assert snapshot(root / "public") == before
    [entry] = atom_entries(root).values()
    assert (entry["title"], entry["published"], entry["updated"]) == ("新标题", PUBLISHED, NEW_SCRAPE)


# Stability across runs -------------------------------------------------------------------------------------


def write_three(root: Path) -> None:
    for number, slug in enumerate(("one", "two", "three"), start=1):
        text = seed_text(article_url(slug), f"标题{slug}", date_div=f"09/01/2024 - 1{number}:00")
        write_seed(root / "seeds", f"{number:03d}_{number:016x}.txt", text)


def test_refresh_without_new_input_touches_nothing_and_rebuilds_identically(tmp_path: Path, state: str | None) -> None:
    root = make_site(tmp_path, database=state)
    write_three(root)
    refresh(root)
    first = snapshot(root / "public")
    assert sorted(first) == sorted([*OUTPUTS, *(f"{name}.gz" for name in OUTPUTS)])

    second = refresh(root)
    assert snapshot(root / "public") == first
    assert "wrote" not in second.stdout
    assert "3 skipped" in second.stdout

    shutil.rmtree(root / "public")
    third = refresh(root)
    assert {name: data for name, (data, _) in snapshot(root / "public").items()} == {
        name: data for name, (data, _) in first.items()
    }
    assert "0 new" in third.stdout


@pytest.mark.parametrize(
    ("name", "damage"),
    [
        pytest.param(f"{FEED}.atom", "delete", id="atom-deleted"),
        pytest.param("index.html", "delete", id="index-deleted"),
        pytest.param("feeds.opml.gz", "delete", id="opml-gz-deleted"),
        pytest.param(f"{FEED}.rss.gz", "delete", id="rss-gz-deleted"),
        pytest.param(f"{FEED}.json", "truncate", id="json-truncated"),
    ],
)
def test_refresh_repairs_a_damaged_output_file(tmp_path: Path, name: str, damage: str, state: str | None) -> None:
    root = make_site(tmp_path, database=state)
    write_three(root)
    refresh(root)
    first = {name: data for name, (data, _) in snapshot(root / "public").items()}
    path = root / "public" / name
    if damage == "delete":
        path.unlink()
    else:
        path.write_bytes(first[name][: len(first[name]) // 2])
    refresh(root)
    assert {name: data for name, (data, _) in snapshot(root / "public").items()} == first


def test_restart_keeps_every_id(tmp_path: Path, state: str | None, request: pytest.FixtureRequest) -> None:
    root = make_site(tmp_path, database=state)
    write_three(root)
    refresh(root)
    before = atom_entries(root)
    assert len(before) == 3

    write_seed(root / "seeds", "004_0000000000000004.txt", seed_text(article_url("four"), "标题four"))
    refresh(root)
    after = atom_entries(root)
    assert set(after) == {*before, article_url("four")}
    for entry_id, entry in before.items():
        assert after[entry_id] == entry

    # Losing the state database too: the ids come from the URLs, so the same entries come back.
    shutil.rmtree(root / "state")
    if state is not None:  # a new, empty database
        make_site(root, database=request.getfixturevalue("postgres_server").new_database())
    refresh(root)
    assert atom_entries(root) == after


# Bad input ---------------------------------------------------------------------------------------------------


def write_bad_and_good(seeds: Path) -> dict[Path, str]:
    """Two good files among bad ones; returns {bad file: a word its reason must contain}."""
    write_seed(seeds, "001_0000000000000001.txt", seed_text(article_url("good-one"), "好文章一"))
    bad = {
        write_seed(seeds, "002_0000000000000002.txt", ""): "title",
        write_seed(seeds, "003_0000000000000003.txt", seed_text("https://www.bbc.com/zhongwen/simp/1")): "host",
        write_seed(
            seeds, "004_0000000000000004.txt", seed_text("https://www.rfi.fr.example.net/cn/%E4%B8%AD%E5%9B%BD/x")
        ): "host",
        write_seed(seeds, "005_0000000000000005.txt", "<!--1704791701000-->\n[示例标题](https://www.rfi.fr/cn/%E4"): "",
        write_seed(
            seeds, "006_0000000000000006.txt", f"<!--1704791701000-->\n[只有标题]({article_url('x')})\n------\n"
        ): "",
    }
    write_seed(seeds, "007_0000000000000007.txt", seed_text(article_url("good-two"), "好文章二"))
    return bad


def test_bad_files_are_reported_once_and_never_stop_the_others(tmp_path: Path) -> None:
    root = make_site(tmp_path)
    bad = write_bad_and_good(root / "seeds")
    result = refresh(root)
    assert "2 new" in result.stdout
    assert "5 errors" in result.stdout
    assert {e["title"] for e in atom_entries(root).values()} == {"好文章一", "好文章二"}
    lines = result.stderr.splitlines()
    for path, word in bad.items():
        [line] = [line for line in lines if str(path) in line]
        reason = line.split(f"{path}:", 1)[1].strip()
        assert reason, line
        assert word in reason, line
    assert len(lines) == len(bad)

    again = refresh(root)
    assert again.stderr == ""
    assert "0 errors" in again.stdout


def test_oversized_file_is_reported_once(tmp_path: Path) -> None:
    root = make_site(tmp_path)
    write_seed(root / "seeds", "001_0000000000000001.txt", seed_text())
    big = root / "seeds" / "002_0000000000000002.txt"
    with big.open("wb") as handle:
        handle.truncate(17 * 1024 * 1024)  # sparse: above the 16 MiB limit without writing it
    assert str(big) in refresh(root).stderr
    assert str(big) not in refresh(root).stderr


def two_sources(first: str, second: str) -> str:
    """config_text with a second seeds source ``other`` (folder ``second``) and a feed ``other`` showing it."""
    source = f"  - name: other\n    kind: seeds\n    path: {second}\n    interval: 1m\nfeeds:\n"
    feed = "  - name: other\n    title: 另一个\n    sources: [other]\n"
    return config_text(seeds=first, extra_feed=feed).replace("feeds:\n", source, 1)


def test_missing_seeds_folder_fails_naming_it(tmp_path: Path) -> None:
    root = make_site(tmp_path, config_text(seeds="no-such-folder"))
    result = refresh(root, expect=6)
    assert str(root / "no-such-folder") in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_missing_source_does_not_stop_a_healthy_one(tmp_path: Path) -> None:
    root = make_site(tmp_path, two_sources("no-such-folder", "other-seeds"))
    write_seed(root / "other-seeds", "001_0000000000000001.txt", seed_text(article_url("other"), "另一篇"))
    result = refresh(root, expect=6)
    assert str(root / "no-such-folder") in result.stderr
    [entry] = read_feed(root / "public" / "other.atom").entries
    assert (entry.id, entry.title) == (article_url("other"), "另一篇")
    assert read_feed(root / "public" / f"{FEED}.atom").entries == []
    opml = ET.fromstring((root / "public" / "feeds.opml").read_bytes())
    assert [o.get("xmlUrl") for o in opml.iter("outline")] == [
        f"{BASE_URL}{FEED}.atom",
        f"{BASE_URL}other.atom",
        f"{BASE_URL}other/%E4%B8%AD%E5%9B%BD.atom",  # its section feed (中国)
    ]


# feeder check -----------------------------------------------------------------------------------------------


def test_check_lists_problem_files_and_writes_nothing(tmp_path: Path) -> None:
    root = make_site(tmp_path)
    bad = write_bad_and_good(root / "seeds")
    result = feeder(root, "check")
    assert "config is valid" in result.stdout
    for path in bad:
        assert str(path) in result.stdout
    assert "7 files, 2 articles, 2 distinct URLs, 5 problems" in result.stdout
    assert sorted(p.name for p in root.iterdir()) == ["config.yaml", "seeds"]


def test_check_strict_fails_only_on_problems(tmp_path: Path) -> None:
    root = make_site(tmp_path)
    write_seed(root / "seeds", "001_0000000000000001.txt", seed_text())
    feeder(root, "check", "--strict")
    write_seed(root / "seeds", "002_0000000000000002.txt", "")
    result = feeder(root, "check", "--strict", expect=6)
    assert str(root / "seeds" / "002_0000000000000002.txt") in result.stdout


CONFIG = config_text()


@pytest.mark.parametrize("command", ["check", "refresh"])
@pytest.mark.parametrize(
    ("text", "problems"),
    [
        pytest.param(CONFIG.replace("base_url:", "colour: blue\nbase_url:"), [(3, "colour")], id="unknown-key"),
        pytest.param(CONFIG.replace("interval: 1m", "interval: 90"), [(8, "sources[0].interval")], id="bare-number"),
        pytest.param(
            CONFIG.replace("sources: [seeds]", "sources: [seeds, seedz]"), [(12, "feeds[0].sources[1]")], id="source"
        ),
        pytest.param(
            CONFIG.replace("base_url:", "colour: blue\nbase_url:").replace("interval: 1m", "interval: 90\n    x: 1"),
            [(3, "colour"), (9, "sources[0].interval"), (10, "sources[0].x")],
            id="three-problems",
        ),
    ],
)
def test_invalid_config_exits_3_with_one_line_per_problem(
    tmp_path: Path, command: str, text: str, problems: list[tuple[int, str]]
) -> None:
    root = make_site(tmp_path, text)
    write_seed(root / "seeds", "001_0000000000000001.txt", seed_text())
    result = feeder(root, command, expect=3)
    lines = result.stderr.splitlines()
    assert len(lines) == len(problems), result.stderr
    for line_number, key in problems:
        assert any(f"config.yaml:{line_number}: {key}: " in line for line in lines), (line_number, key, lines)
    assert not (root / "public").exists()
    assert not (root / "state").exists()


# Dates --------------------------------------------------------------------------------------------------------


def dated_seeds() -> Iterator[tuple[str, str, datetime, datetime]]:
    """(slug, seed text, expected published, expected updated); FILE_MTIME stands in for missing scrape times."""
    scraped = datetime(2024, 1, 9, 9, 20, tzinfo=UTC)
    yield "winter", seed_text(article_url("winter"), scraped_ms=ms(scraped)), PUBLISHED, scraped
    summer = datetime(2024, 7, 18, 8, 30, tzinfo=UTC)
    yield (
        "summer",
        seed_text(article_url("summer"), date_div="18/07/2024 - 10:05", scraped_ms=ms(summer)),
        datetime(2024, 7, 18, 8, 5, tzinfo=UTC),
        summer,
    )
    yield "no-stamp", seed_text(article_url("no-stamp"), scraped_ms=None), PUBLISHED, FILE_MTIME
    yield "zero-stamp", seed_text(article_url("zero-stamp"), scraped_ms=0), PUBLISHED, FILE_MTIME
    yield "no-date", seed_text(article_url("no-date"), date_div=None, scraped_ms=ms(scraped)), scraped, scraped
    yield (
        "1970-date",
        seed_text(article_url("1970-date"), date_div="01/01/1970 - 01:00", scraped_ms=ms(scraped)),
        scraped,
        scraped,
    )
    yield (
        "future-date",
        seed_text(article_url("future-date"), date_div="01/01/2099 - 01:00", scraped_ms=ms(scraped)),
        scraped,
        scraped,
    )
    yield (
        "nothing",
        seed_text(article_url("nothing"), date_div=None, scraped_ms=4102444800000),
        FILE_MTIME,
        FILE_MTIME,
    )


def test_published_and_updated_are_the_seeds_times_never_now_or_1970(tmp_path: Path) -> None:
    root = make_site(tmp_path)
    expected = {}
    for number, (slug, text, published, updated) in enumerate(dated_seeds(), start=1):
        path = write_seed(root / "seeds", f"{number:03d}_{number:016x}.txt", text)
        os.utime(path, (FILE_MTIME.timestamp(), FILE_MTIME.timestamp()))
        expected[article_url(slug)] = (published, updated)
    refresh(root)

    atom = {i: (e["published"], e["updated"]) for i, e in atom_entries(root).items()}
    assert atom == expected
    rss = read_feed(root / "public" / f"{FEED}.rss").entries
    assert {e.id: stamp(e.published_parsed) for e in rss} == {i: p for i, (p, _) in expected.items()}
    document = json.loads((root / "public" / f"{FEED}.json").read_text(encoding="utf-8"))
    assert {
        item["id"]: (datetime.fromisoformat(item["date_published"]), datetime.fromisoformat(item["date_modified"]))
        for item in document["items"]
    } == expected
    now = datetime.now(UTC)
    for published, updated in atom.values():
        assert published <= updated
        for moment in (published, updated):
            assert moment.year >= 1990
            assert abs(now - moment) > timedelta(days=1)
