"""The status page in a real browser: headless Chromium (Selenium, Debian's chromium and chromium-driver) against a
real ``feeder run`` (tests/test_service.py starts it on free ports). The test enters the token, clicks "Refresh
now" on a source and sees its last poll time change without a reload, checks the page ran under its strict
Content-Security-Policy without a violation, and saves a screenshot (test-artifacts/status-page.png).

Without chromium or chromedriver the test skips and says why; under CI (``CI`` set) it fails instead.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.apiserver import request
from tests.builders import free_port, seed_text, write_seed
from tests.scaleout import Cluster, node_config, port_of
from tests.test_service import Daemon, Site, age, article_url, make_site, wait_until

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
WAIT = 20.0
EMPTIED = "the folder holds no seed files any more (it held 1)"


def _browser_or_skip() -> None:
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    try:
        import selenium  # noqa: F401, PLC0415 - only this test needs it
    except ImportError:
        missing.append("the selenium package (pip install -e '.[dev]')")
    if not missing:
        return
    reason = f"the status page test needs {', '.join(missing)} (apt-get install chromium chromium-driver)"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
def browser() -> Iterator[Any]:
    _browser_or_skip()
    from selenium import webdriver  # noqa: PLC0415
    from selenium.webdriver.chrome.service import Service  # noqa: PLC0415

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,860"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def site_with_three_sources(root: Path) -> Site:
    """The seeds of make_site, a second seeds folder ``scraps`` with one article (emptied later), and a feed
    source that cannot be reached; one feed over both folders, with a Traditional Chinese edition."""
    site = make_site(root, interval="1d")
    scraps = root / "scraps"
    write_seed(scraps, "001_0000000000000001.txt", seed_text(article_url("scrap-1"), "剪报一"))
    age(scraps / "001_0000000000000001.txt")
    extra = (
        "  - {name: scraps, kind: seeds, path: scraps, interval: 1d}\n"
        f"  - {{name: wire, kind: feed, url: 'http://127.0.0.1:{free_port()}/feed.xml', interval: 1d}}\n"
    )
    text = site.config.read_text(encoding="utf-8").replace("feeds:\n", extra + "feeds:\n", 1)
    text = text.replace("    sources: [seeds]\n", "    sources: [seeds, scraps]\n    variants: [zh-tw]\n")
    site.config.write_text(text, encoding="utf-8")
    return site


def polled(site: Site) -> dict[str, str | None]:
    sources = request(site.control_port, "GET", "/api/sources", token=site.token).json()["sources"]
    return {source["name"]: source["last_poll"] for source in sources}


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    running = Daemon(site_with_three_sources(tmp_path / "site"))
    try:
        running.wait_ready()
        wait_until("every source polled", lambda: all(polled(running.site).values()), WAIT, running)
        yield running
    finally:
        running.terminate()


def test_the_status_page_refreshes_a_source_in_place(browser: Any, daemon: Daemon, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By  # noqa: PLC0415
    from selenium.webdriver.support.ui import WebDriverWait  # noqa: PLC0415

    site = daemon.site
    (site.root / "scraps" / "001_0000000000000001.txt").unlink()  # the scraps row will say the folder emptied
    wait = WebDriverWait(browser, WAIT)
    browser.get(f"http://127.0.0.1:{site.control_port}/")
    wait.until(lambda driver: driver.find_element(By.ID, "token").is_displayed())
    browser.find_element(By.ID, "token").send_keys(site.token)
    browser.find_element(By.ID, "sign-in").click()
    wait.until(lambda driver: driver.find_elements(By.CSS_SELECTOR, "#source-seeds .last-poll time"))
    rows = browser.find_elements(By.CSS_SELECTOR, "#sources tbody tr")
    assert [row.get_attribute("data-source") for row in rows] == ["seeds", "scraps", "wire"]
    before = last_poll(browser)
    while datetime.now(UTC).replace(microsecond=0) <= datetime.fromisoformat(before):
        time.sleep(0.1)  # status times have whole seconds: let one pass so that a new poll shows

    browser.find_element(By.CSS_SELECTOR, "#source-seeds button.refresh").click()
    wait.until(lambda driver: last_poll(driver) != before)
    wait.until(lambda driver: "refreshed just now" in driver.find_element(By.ID, "source-seeds").text)
    assert datetime.fromisoformat(last_poll(browser)) > datetime.fromisoformat(before)
    assert browser.find_element(By.ID, "source-seeds").find_element(By.CSS_SELECTOR, "button.refresh").is_enabled()

    browser.find_element(By.CSS_SELECTOR, "#source-scraps button.refresh").click()
    wait.until(lambda driver: "refreshed just now" in driver.find_element(By.ID, "source-scraps").text)
    assert EMPTIED in browser.find_element(By.ID, "source-scraps").text  # the rule-health line of a source
    assert "failed: no feed could be read" in browser.find_element(By.ID, "source-wire").text
    feeds = browser.find_element(By.ID, "feeds").text
    assert "RFI 中文 (zh-TW)" in feeds
    links = [a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "#feed-rfi-cn a")]
    assert links == [site.url(f"rfi-cn.{kind}") for kind in ("atom", "rss", "json")]
    save_screenshot(browser, tmp_path)

    assert csp_problems(browser) == []
    browser.refresh()  # the token is asked for once per tab
    wait.until(lambda driver: driver.find_elements(By.CSS_SELECTOR, "#source-seeds .last-poll time"))
    assert not browser.find_element(By.ID, "login").is_displayed()


def test_on_postgresql_the_page_shows_the_workers_and_refreshes_through_them(
    browser: Any, tmp_path: Path, postgres_url: str
) -> None:
    from selenium.webdriver.common.by import By  # noqa: PLC0415
    from selenium.webdriver.support.ui import WebDriverWait  # noqa: PLC0415

    seeds = tmp_path / "seeds"
    write_seed(seeds, "001_0000000000000001.txt", seed_text(article_url("one"), "一"))
    body = (
        f"sources:\n  - {{name: seeds, kind: seeds, path: '{seeds}', interval: 1d}}\n"
        "feeds:\n  - {name: rfi-cn, title: RFI 中文, sources: [seeds]}\n"
    )
    config = node_config(tmp_path / "node", postgres_url, body)
    cluster = Cluster()
    try:
        worker = cluster.start(config, "worker", name="worker")
        cluster.start(config, "run", name="run")
        token_file = config.parent / "state" / "control.token"
        cluster.wait("the token", token_file.exists)
        cluster.wait("the first poll", lambda: "seeds: 1 new" in worker.log())  # the one asked for at start
        port = port_of(config, "control")
        wait = WebDriverWait(browser, WAIT)
        browser.get(f"http://127.0.0.1:{port}/")
        wait.until(lambda driver: driver.find_element(By.ID, "token").is_displayed())
        browser.find_element(By.ID, "token").send_keys(token_file.read_text().strip())
        browser.find_element(By.ID, "sign-in").click()
        wait.until(lambda driver: "1 worker alive" in driver.find_element(By.ID, "summary").text)
        assert "poll jobs: 0 waiting" in browser.find_element(By.ID, "summary").text

        polls = worker.log().count("seeds: ")
        browser.find_element(By.CSS_SELECTOR, "#source-seeds button.refresh").click()
        wait.until(lambda driver: "refreshed just now" in driver.find_element(By.ID, "source-seeds").text)
        assert worker.log().count("seeds: ") == polls + 1  # the worker polled it
        assert csp_problems(browser) == []
    finally:
        cluster.stop()


def last_poll(driver: Any) -> str:
    from selenium.webdriver.common.by import By  # noqa: PLC0415

    return str(driver.find_element(By.CSS_SELECTOR, "#source-seeds .last-poll time").get_attribute("datetime"))


def csp_problems(driver: Any) -> list[str]:
    """Console lines about a refused script, style or connection (the favicon's 404 is no problem)."""
    lines = [str(entry.get("message", "")) for entry in driver.get_log("browser")]
    return [line for line in lines if "Content Security Policy" in line or "Refused" in line]


def save_screenshot(driver: Any, folder: Path) -> None:
    """In the test's tmp folder, copied to test-artifacts/ (which CI can keep; git ignores it)."""
    shot = folder / "status-page.png"
    assert driver.save_screenshot(str(shot))
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copyfile(shot, ARTIFACTS / "status-page.png")
    print(f"\nstatus page screenshot: {ARTIFACTS / 'status-page.png'}")
