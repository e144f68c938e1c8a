"""The search page of `edgembed serve --index`, in a real headless browser: Debian's
Chromium driven by selenium through Debian's chromedriver. Nothing leaves the machine: the
page and its files come from the server on 127.0.0.1, and Chromium runs with its
background networking off.

Keyboard only: the query box has the focus, a query is typed and Enter pressed; the hits
show their file, page and highlighted words, and link to the file. Every control has a
label, the text colours have WCAG AA contrast, and a screenshot lands in the test's
output folder."""

from __future__ import annotations

import re
import shutil
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("starlette")
pytest.importorskip("pypdf")

from edgembed import Index, default_package_path  # noqa: E402
from edgembed.index import index_paths  # noqa: E402
from edgembed.serve.app import create_app, running  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
INSTALL = "apt-get install -y chromium chromium-driver"
SAMPLES = default_package_path().parent / "samples"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1100,1000")


@pytest.fixture(scope="module")
def served_index(tmp_path_factory, default_encoder) -> Path:
    folder = tmp_path_factory.mktemp("files") / "files"
    shutil.copytree(SAMPLES / "documents", folder / "documents")
    shutil.copy(SAMPLES / "water-cycle.txt", folder)
    path = tmp_path_factory.mktemp("indexes") / "index"
    index = Index.create(path, default_encoder)
    index_paths(index, [folder])
    index.close()
    return path


@pytest.fixture(scope="module")
def port(served_index, default_encoder):
    reader = Index.open(served_index, encoder=default_encoder, view=True)
    with running(create_app(default_encoder, reader)) as url:
        yield int(url.rsplit(":", 1)[1])
    reader.close()


@pytest.fixture
def browser(tmp_path, monkeypatch):
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        pytest.skip(f"the browser test needs Chromium and chromedriver at {CHROMIUM} and "
                    f"{CHROMEDRIVER}: on Debian or Ubuntu, as root, `{INSTALL}` (`make test` "
                    "runs it where it can)")
    webdriver = pytest.importorskip("selenium.webdriver",
                                    reason="needs selenium: pip install 'edgembed[dev]'")
    from selenium.webdriver.chrome.service import Service

    monkeypatch.setenv("SE_OFFLINE", "true")  # selenium must never fetch a driver
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def wait_for(driver, condition, timeout: float = 60):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(lambda d: condition(d))


def contrast(foreground: str, background: str) -> float:
    """WCAG contrast ratio of two CSS rgb()/rgba() colours."""
    def luminance(colour: str) -> float:
        red, green, blue = (int(v) / 255 for v in re.findall(r"[\d.]+", colour)[:3])
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
                  for c in (red, green, blue)]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    light, dark = sorted((luminance(foreground), luminance(background)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_search_page_by_keyboard(browser, port, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    origin = f"http://127.0.0.1:{port}"
    browser.get(origin + "/")
    wait_for(browser, lambda d: d.find_element(By.ID, "index-info").text)
    # every control is labelled
    for control in browser.find_elements(By.CSS_SELECTOR, "input, select, button"):
        if control.tag_name != "button":
            assert browser.find_elements(By.CSS_SELECTOR,
                                         f"label[for='{control.get_attribute('id')}']")
        else:
            assert control.text.strip()
    # the query box has the focus: type and press Enter, no mouse
    assert browser.switch_to.active_element.get_attribute("id") == "query"
    browser.switch_to.active_element.send_keys("what does error E24 mean", Keys.ENTER)
    wait_for(browser, lambda d: "results for" in d.find_element(By.ID, "status").text)
    hits = browser.find_elements(By.CSS_SELECTOR, "#results .hit")
    assert hits
    first = hits[0]
    link = first.find_element(By.CSS_SELECTOR, "h2 a")
    assert link.text == "DW-450 Dishwasher Quick Guide"
    assert "dishwasher-manual.pdf · page 2" in first.find_element(By.CLASS_NAME, "where").text
    marks = [m.text.lower() for m in first.find_elements(By.TAG_NAME, "mark")]
    assert marks and set(marks) <= {"what", "does", "error", "e24", "mean"}, marks
    assert link.get_attribute("href").endswith("dishwasher-manual.pdf#page=2")
    with urllib.request.urlopen(link.get_attribute("href")) as response:
        assert response.headers["Content-Type"] == "application/pdf"
        assert response.read().startswith(b"%PDF")
    browser.save_screenshot(str(tmp_path / "search-page.png"))
    print(f"\nscreenshot: {tmp_path / 'search-page.png'}")
    assert (tmp_path / "search-page.png").stat().st_size > 10_000
    # keyboard: from the results back to the box with "/", then Tab reaches the button
    first.find_element(By.CSS_SELECTOR, "h2 a").send_keys("/")
    assert browser.switch_to.active_element.get_attribute("id") == "query"
    browser.switch_to.active_element.send_keys(Keys.TAB)
    assert browser.switch_to.active_element.tag_name == "button"
    # contrast of text, muted text, links and highlighted words against their backgrounds
    for selector in ("body", ".where", "h2 a", "mark", "button", "#query-help"):
        element = browser.find_element(By.CSS_SELECTOR, selector)
        colour = element.value_of_css_property("color")
        background = browser.execute_script(
            "let e = arguments[0]; while (e) { const c = getComputedStyle(e)"
            ".backgroundColor; if (!c.startsWith('rgba(0, 0, 0, 0)')) return c; "
            "e = e.parentElement; } return 'rgb(255, 255, 255)';", element)
        assert contrast(colour, background) >= 4.5, (selector, colour, background)
    # the filters: only HTML files
    Select(browser.find_element(By.ID, "file-type")).select_by_value(".html")
    query = browser.find_element(By.ID, "query")
    query.clear()
    query.send_keys("is stream water safe to drink", Keys.ENTER)
    wait_for(browser, lambda d: "“is stream water" in d.find_element(By.ID, "status").text)
    wheres = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#results .where")]
    assert wheres and all(".html" in where for where in wheres)
    assert any("section “Camping checklist”" in where for where in wheres)
    # everything the page loaded came from this server
    loaded = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)")
    assert loaded and all(url.startswith(origin) for url in loaded), loaded
