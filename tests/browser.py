"""A real browser for the web pages' tests: Debian's chromium (installed by ./test), driven by
Playwright. Playwright's own browser download is never used; nothing leaves loopback.
Screenshots are kept in test-artifacts/screenshots/ as test artefacts."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "screenshots"
# Without these, chromium tries to reach Google's services at start and on a timer.
QUIET_FLAGS = ["--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run", "--disable-quic", "--disable-gpu",
               "--no-sandbox"]


@contextmanager
def chromium() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: ./test installs it (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                             args=QUIET_FLAGS)
        try:
            yield browser
        finally:
            browser.close()


def screenshot(page: Page, name: str) -> Path:
    """Keep what the page looked like, for people reading a test run."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{re.sub(r'[^a-z0-9_-]+', '-', name.lower())}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
