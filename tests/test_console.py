"""``pilotlight console --sandbox`` in a real browser: one click starts a drill, the page follows it to the end,
and its report shows the timeline and the RTO. Also: a POST without the session token is refused, and the
server listens on 127.0.0.1 only.

The console runs as a user runs it (a subprocess of the CLI); the browser is Debian's headless Chromium driven
by Selenium (.ci/run installs chromium and chromium-driver).
"""

from __future__ import annotations

import http.client
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REFERENCE, ROOT

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
    reason="needs Debian's chromium and chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver); "
           "`.ci/run` installs them (apt-get install chromium chromium-driver)",
)
# Fast enough for a test (the hardened reference drill is about 66 modeled minutes: some 7 s on the wall),
# slow enough that the page is seen following it.
PACE = 600
STARTUP_LIMIT = 180.0
DRILL_LIMIT = 240.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, port: int, process: subprocess.Popen[bytes], log: Path) -> None:
        self.port, self.process, self.log = port, process, log
        self.url = f"http://127.0.0.1:{port}"

    def post(self, path: str, body: str = "", host: str | None = None) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            headers = {"Content-Type": "application/x-www-form-urlencoded"}
            if host:
                headers["Host"] = host
            conn.request("POST", path, body=body, headers=headers)
            return conn.getresponse().status
        finally:
            conn.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    port = _free_port()
    log = tmp_path_factory.mktemp("console") / "console.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "cli", "console", str(REFERENCE), "--sandbox", "--port", str(port),
             "--pace", str(PACE)], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    found = Server(port, process, log)
    try:
        deadline = time.monotonic() + STARTUP_LIMIT
        while True:
            assert process.poll() is None, f"the console exited: {log.read_text()}"
            assert time.monotonic() < deadline, f"the console did not serve in time: {log.read_text()}"
            try:
                with urllib.request.urlopen(found.url + "/", timeout=5) as answer:
                    if answer.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.5)
        yield found
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def browser() -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1400,1800"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _text(driver, css: str) -> str | None:
    """The text of the first element matching ``css`` now (the page swaps its panel as the drill goes)."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    try:
        found = driver.find_elements(By.CSS_SELECTOR, css)
        return found[0].text if found else None
    except StaleElementReferenceException:
        return None


def test_one_click_starts_a_drill_the_page_follows_it_and_its_report_shows_the_timeline(server, browser,
                                                                                        tmp_path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(server.url + "/")
    assert "pilotlight console: shop" in browser.title
    assert _text(browser, "#pl-readiness-status") == "READY"  # readiness ran as scheduled

    browser.find_element(By.ID, "pl-start-drill").click()
    WebDriverWait(browser, 10).until(expected_conditions.alert_is_present())
    alert = browser.switch_to.alert
    assert alert.text.startswith("Start a drill of shop?")
    alert.accept()
    WebDriverWait(browser, 10).until(lambda d: (_text(d, "#pl-notice") or "").startswith("Started drill drill-"))

    # The page follows the drill: running with its current step, then done with its RTO and report.
    seen_running: set[str] = set()
    deadline = time.monotonic() + DRILL_LIMIT
    while (status := _text(browser, "#pl-drill-status")) != "SUCCEEDED":
        assert status in (None, "RUNNING"), status
        if status == "RUNNING" and (current := _text(browser, "#pl-drill-current")):
            seen_running.add(current)
        assert time.monotonic() < deadline, f"the drill did not end in the page: {server.log.read_text()}"
        time.sleep(0.2)
    assert seen_running, "the page never showed the running drill's current step"
    rto = _text(browser, "#pl-drill-rto")
    assert rto and re.fullmatch(r"\d+m\d\ds", rto), rto
    link = WebDriverWait(browser, 10).until(lambda d: d.find_element(By.ID, "pl-drill-report"))
    assert re.fullmatch(rf"{re.escape(server.url)}/reports/drill-[0-9a-f]+", link.get_attribute("href"))

    link.click()
    WebDriverWait(browser, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".chart svg"))
    shot = tmp_path / "drill-report.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000

    # One bar per step of the timeline (the report marks each bar <g id="step-N">, as its Steps table lists them).
    bars = browser.find_elements(By.CSS_SELECTOR, ".chart svg g[id^='step-']")
    steps = browser.find_elements(By.XPATH, "//h2[text()='Steps']/following-sibling::table[1]//tr[td]")
    assert len(steps) >= 10
    assert sorted(b.get_attribute("id") for b in bars) == sorted(f"step-{i}" for i in range(len(steps)))
    assert browser.find_elements(By.CSS_SELECTOR, ".chart svg #rto-measured")
    # The RTO the console showed is the report's.
    rto_row = browser.find_element(By.XPATH, "//table[@class='summary']//tr[th='RTO']/td").text
    assert f"({rto})" in rto_row, rto_row


def test_a_post_without_this_sessions_token_is_forbidden(server) -> None:
    drills_before = urllib.request.urlopen(server.url + "/api/state", timeout=30).read()
    assert server.post("/actions/start_drill") == 403
    assert server.post("/actions/start_drill", "token=guessed") == 403
    assert server.post("/actions/clean_up", "drill_id=d00000000") == 403
    # A page on another name that resolves here (DNS rebinding) is not served at all.
    assert server.post("/actions/start_drill", "token=guessed", host="attacker.example") == 400
    assert urllib.request.urlopen(server.url + "/api/state", timeout=30).read().count(b'"RUNNING"') == \
        drills_before.count(b'"RUNNING"')


def test_the_console_listens_on_127_0_0_1_only(server) -> None:
    """Every listening socket on the console's port is bound to 127.0.0.1 (none on 0.0.0.0 or IPv6)."""
    port = f"{server.port:04X}"
    bound = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, local_port = local.rsplit(":", 1)
            if local_port == port and state == "0A":  # LISTEN
                bound.append(address)
    assert bound == ["0100007F"]  # 127.0.0.1, little-endian
