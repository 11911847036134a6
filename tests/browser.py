"""Headless Chromium for the tests that look at pages in a real browser (tests/test_ui.py: the MLflow UI;
tests/test_site.py: `harness site`), driven by Selenium through Debian's chromedriver, never a downloaded one.

Screenshots go to $HARNESS_TEST_ARTIFACTS (default: test-artifacts/ in the repository) / ui/.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
WAIT_S = 60
needs_chromium = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER), reason="the browser tests need Debian's chromium and chromium-driver "
    "(apt-get install chromium chromium-driver; `make test` installs them when run as root)")


def artifacts_dir() -> Path:
    root = os.environ.get("HARNESS_TEST_ARTIFACTS") or Path(__file__).resolve().parents[1] / "test-artifacts"
    folder = Path(root) / "ui"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def browser(tmp_path, monkeypatch):
    """Headless Chromium with a fresh profile and nothing that reaches out to the network."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.selenium_manager import SeleniumManager

    def no_download(self, *args):
        raise AssertionError("Selenium Manager was asked for a driver; the test must use the system chromedriver")

    monkeypatch.setattr(SeleniumManager, "binary_paths", no_download)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--window-size=1800,1000", f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(arg)
    service = Service(CHROMEDRIVER, log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()


def screenshot(driver, name: str, capsys) -> Path:
    path = artifacts_dir() / name
    assert driver.save_screenshot(str(path)), path
    with capsys.disabled():
        print(f"\nscreenshot: {path}")
    return path
