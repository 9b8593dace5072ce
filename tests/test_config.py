"""config.yaml loading: defaults, path resolution, and one readable line per wrong value."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from feeder.config import (
    Config,
    ControlConfig,
    FeedConfig,
    FeedSource,
    HttpConfig,
    SeedsSource,
    ServerConfig,
    SiteSource,
    WebSubConfig,
    load_config,
    parse_config,
)
from feeder.config_fields import parse_duration
from feeder.errors import ConfigError
from tests.builders import config_text, seeds_folder

ROOT = Path(__file__).resolve().parent.parent


def test_the_bundled_config_is_valid_and_resolves_paths_against_its_folder() -> None:
    config = load_config(ROOT / "config.yaml")
    assert config.output_dir == ROOT / "public"
    assert config.state_dir == ROOT / "state"
    assert seeds_folder(config) == ROOT / "seeds"
    assert config.sources[0].interval == timedelta(minutes=1)
    assert config.feeds[0].name == "rfi-cn"
    assert config.allowed_hosts == ()
    assert config.site("rfi-cn").hosts == {"www.rfi.fr"}
    assert (config.feeds[0].language, config.feeds[0].author) == ("zh-cn", "RFI")


def _keys(node: Any) -> set[str]:
    if isinstance(node, dict):
        return set(node) | {k for value in node.values() for k in _keys(value)}
    if isinstance(node, list):
        return {k for item in node for k in _keys(item)}
    return set()


def test_the_bundled_config_shows_every_setting() -> None:
    text = (ROOT / "config.yaml").read_text(encoding="utf-8")
    active = _keys(yaml.safe_load(text))
    commented = set(re.findall(r"^\s*#\s*-?\s*([a-z_]+):", text, flags=re.MULTILINE))
    models: list[type[Any]] = [
        Config,
        ServerConfig,
        ControlConfig,
        HttpConfig,
        WebSubConfig,
        SeedsSource,
        SiteSource,
        FeedSource,
        FeedConfig,
    ]
    settings = {name for model in models for name in model.model_fields}
    assert settings - active - commented == set()


def commented_example(first: str) -> str:
    """The commented-out source of the bundled config that starts with ``first``, uncommented."""
    lines = (ROOT / "config.yaml").read_text(encoding="utf-8").splitlines()
    start = lines.index(first)
    block = [lines[start]]
    for line in lines[start + 1 :]:
        if not line.startswith("  #   "):
            break
        block.append(line)
    return "\n".join(line.replace("  # ", "  ", 1) for line in block)


def test_the_commented_rfi_example_is_a_valid_source(tmp_path: Path) -> None:
    text = config_text().replace("feeds:\n", commented_example("  # - name: rfi") + "\nfeeds:\n")
    source = parse_config(text, tmp_path / "config.yaml").sources[1]
    assert isinstance(source, SiteSource)
    assert source.site == "rfi-cn"
    assert source.feeds == ("https://www.rfi.fr/cn/rss", "https://www.rfi.fr/cn/%E4%B8%AD%E5%9B%BD/rss")
    assert (source.fulltext, source.max_pages, source.interval) == (True, 30, timedelta(minutes=15))


def test_the_commented_feed_example_is_a_valid_source(tmp_path: Path) -> None:
    text = config_text().replace("feeds:\n", commented_example("  # - name: example") + "\nfeeds:\n")
    source = parse_config(text, tmp_path / "config.yaml").sources[1]
    assert isinstance(source, FeedSource)
    assert (source.url, source.fulltext, source.hosts) == ("https://example.org/feed.xml", "none", ())


def test_kind_rfi_is_read_as_the_rfi_cn_site_with_a_notice(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    old = "  - {name: rfi, kind: rfi, feeds: [https://www.rfi.fr/cn/rss], origin: 'http://127.0.0.1:9'}\n"
    with caplog.at_level("WARNING"):
        source = parse_config(config_text().replace("feeds:\n", old + "feeds:\n"), tmp_path / "c.yaml").sources[1]
    assert isinstance(source, SiteSource)
    assert (source.site, source.origin, source.fulltext) == ("rfi-cn", "http://127.0.0.1:9", True)
    assert [r.getMessage() for r in caplog.records] == [
        f"{tmp_path / 'c.yaml'}: source rfi: kind: rfi is read as kind: site with site: rfi-cn"
    ]


def test_defaults_fill_what_a_minimal_config_leaves_out(tmp_path: Path) -> None:
    config = parse_config(config_text(), tmp_path / "config.yaml")
    assert config.server == ServerConfig(host="127.0.0.1", port=8080)
    assert config.feeds[0].language == "zh-cn"
    assert config.feeds[0].author == "RFI"


def test_the_control_api_defaults_to_loopback_and_a_token_in_the_state_folder(tmp_path: Path) -> None:
    config = parse_config(config_text(), tmp_path / "config.yaml")
    assert config.control == ControlConfig(host="127.0.0.1", port=8081, token_file=None)
    assert config.token_file == tmp_path / "state" / "control.token"
    chosen = parse_config(
        config_text() + "control: {host: '::1', port: 9000, token_file: secrets/token}\n", tmp_path / "config.yaml"
    )
    assert (chosen.control.host, chosen.control.port) == ("::1", 9000)
    assert chosen.token_file == tmp_path / "secrets" / "token"


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("{port: 8080}", "control.port: must differ from server.port (8080)"),
        ("{port: 0}", "control.port: "),
        ("{host: 'http://127.0.0.1'}", "control.host: not a host name: 'http://127.0.0.1'"),
        ("{tls: true}", "control.tls: "),
    ],
)
def test_a_wrong_control_setting_names_its_line(tmp_path: Path, setting: str, message: str) -> None:
    text = config_text() + f"control: {setting}\n"
    line = text.count("\n")
    with pytest.raises(ConfigError) as caught:
        parse_config(text, tmp_path / "config.yaml")
    assert str(caught.value).startswith(f"{tmp_path / 'config.yaml'}:{line}: {message}"), str(caught.value)


def test_the_state_database_is_sqlite_unless_a_postgresql_url_is_given(tmp_path: Path) -> None:
    assert parse_config(config_text(), tmp_path / "config.yaml").database is None
    for url in ("postgresql://feeder:secret@db.example/feeder", "postgres:///feeder?host=/run/postgresql"):
        assert parse_config(config_text() + f"database: {url!r}\n", tmp_path / "config.yaml").database == url


@pytest.mark.parametrize("value", ["mysql://db/feeder", "state/feeder.sqlite3", "42"])
def test_a_database_that_is_not_a_postgresql_url_names_its_line(tmp_path: Path, value: str) -> None:
    text = config_text() + f"database: {value}\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(text, tmp_path / "config.yaml")
    assert str(caught.value).startswith(f"{tmp_path / 'config.yaml'}:{text.count(chr(10))}: database: "), caught.value


def test_base_url_gets_a_trailing_slash(tmp_path: Path) -> None:
    text = config_text().replace("http://127.0.0.1:8080/", "https://feeds.example.org/rfi")
    assert parse_config(text, tmp_path / "c.yaml").base_url == "https://feeds.example.org/rfi/"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("15m", 900), ("1h", 3600), ("2d", 172_800), (" 5m ", 300)],
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("value", [90, "1:30", "0s", "5x", "m", "", None, True, "1.5h"])
def test_bad_durations_are_refused(value: object) -> None:
    with pytest.raises(ValueError, match=r"duration|string"):
        parse_duration(value)


def _error(text: str, tmp_path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, tmp_path / "config.yaml")
    return str(caught.value)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ("    interval: 1m\n", "    interval: 1m\n    colour: red\n"),
            "config.yaml:9: sources[0].colour: unknown setting",
        ),
        (("interval: 1m", "interval: 90"), "config.yaml:8: sources[0].interval: must be a string"),
        (("interval: 1m", "interval: 1:30"), "config.yaml:8: sources[0].interval: must be a string"),
        (("interval: 1m", "interval: soon"), "config.yaml:8: sources[0].interval: invalid duration 'soon'"),
        (("max_entries: 200", "max_entries: 0"), "config.yaml:13: feeds[0].max_entries: Input should be greater"),
        (("max_entries: 200", "max_entries: lots"), "config.yaml:13: feeds[0].max_entries: Input should be a valid"),
        (("sources: [seeds]", "sources: [seedz]"), "config.yaml:12: feeds[0].sources[0]: unknown source 'seedz'"),
        (("  - name: rfi-cn", "  - name: ../etc"), "config.yaml:10: feeds[0].name: String should match pattern"),
        (("base_url: http://127.0.0.1:8080/", "base_url: ftp://x/"), "config.yaml:3: base_url: must be an absolute"),
        (("state_dir: state\n", ""), "config.yaml:1: state_dir: required setting is missing"),
        (
            ("    kind: seeds", "    kind: gopher"),
            "config.yaml:6: sources[0].kind: unknown kind 'gopher' (expected one of: 'seeds', 'site', 'feed')",
        ),
    ],
)
def test_each_wrong_value_is_one_line_with_file_line_and_key(
    change: tuple[str, str], expected: str, tmp_path: Path
) -> None:
    old, new = change
    text = config_text()
    assert old in text
    message = _error(text.replace(old, new), tmp_path)
    assert expected in message
    assert len(message.splitlines()) == 1


def test_several_wrong_values_give_one_line_each(tmp_path: Path) -> None:
    text = config_text().replace("interval: 1m", "interval: 90").replace("max_entries: 200", "max_entries: -1")
    lines = _error(text, tmp_path).splitlines()
    assert len(lines) == 2
    assert lines[0].endswith("sources[0].interval: must be a string such as '30s', '15m' or '1h', not 90")
    assert "feeds[0].max_entries" in lines[1]


def test_duplicate_names_are_refused(tmp_path: Path) -> None:
    text = config_text(extra_feed="  - name: rfi-cn\n    title: again\n    sources: [seeds]\n")
    assert "config.yaml:14: feeds[1].name: duplicate name 'rfi-cn'" in _error(text, tmp_path)


def test_empty_lists_are_refused(tmp_path: Path) -> None:
    assert parse_config(config_text() + "allowed_hosts: []\n", tmp_path / "c.yaml").allowed_hosts == ()  # optional now
    message = _error(config_text().replace("sources: [seeds]", "sources: []"), tmp_path)
    assert "config.yaml:12: feeds[0].sources: Tuple should have at least 1 item" in message


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    message = _error("output_dir: public\nsources: [unclosed\n", tmp_path)
    assert message.startswith(f"{tmp_path / 'config.yaml'}:")
    assert "not valid YAML" in message


def test_a_config_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    assert "must be a mapping" in _error("- just\n- a list\n", tmp_path)


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "absent.yaml")


def test_config_records_are_frozen(tmp_path: Path) -> None:
    config = parse_config(config_text(), tmp_path / "config.yaml")
    with pytest.raises(ValueError, match="frozen"):
        config.base_url = "http://elsewhere/"  # type: ignore[misc]


def test_a_key_written_twice_is_refused(tmp_path: Path) -> None:
    text = config_text().replace("    max_entries: 200\n", "    max_entries: 200\n    sources: [other]\n")
    assert _error(text, tmp_path).endswith(
        "config.yaml:14: feeds[0].sources: set twice (the first value would be ignored)"
    )


def test_cache_lifetime_follows_the_shortest_interval_of_a_feeds_sources(tmp_path: Path) -> None:
    slow = "  - name: slow\n    title: 慢\n    sources: [hourly]\n    variants: [zh-hk]\n"
    text = config_text(extra_feed=slow).replace(
        "feeds:\n", "  - name: hourly\n    kind: seeds\n    path: h\n    interval: 1h\nfeeds:\n"
    )
    text = text.replace("    sources: [seeds]\n", "    sources: [seeds, hourly]\n", 1)
    config = parse_config(text, tmp_path / "config.yaml")
    assert config.feed_interval(config.feeds[0]) == timedelta(minutes=1)
    assert config.max_age("rfi-cn.atom") == 60
    assert config.max_age("slow.rss.gz") == 3600
    assert config.max_age("slow/中国.atom") == 3600
    assert config.max_age("slow/archive/3.json") == 3600
    assert config.max_age("slow-zh-hk/中国/archive/1.rss") == 3600
    assert config.max_age("index.html") == 60


@pytest.mark.parametrize("origin", ["http://127.0.0.1:8123/mirror", "ftp://www.rfi.fr", "https://www.rfi.fr/?x=1"])
def test_an_origin_is_a_scheme_and_host_only(origin: str, tmp_path: Path) -> None:
    text = config_text().replace(
        "feeds:\n", f"  - {{name: rfi, kind: rfi, feeds: [https://www.rfi.fr/cn/rss], origin: '{origin}'}}\nfeeds:\n"
    )
    message = _error(text, tmp_path)
    assert "sources[1].origin:" in message
