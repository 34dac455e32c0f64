"""Playwright against the system Chromium (Debian package ``chromium``; never ``playwright install``).

The app is served by pytest-django's ``live_server`` (a thread of this process, transactional
database); Celery runs eagerly here, so jobs started from the pages finish within the request.
Screenshots of each step go to ``test-artifacts/browser/`` (git-ignored).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("PSA_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run"]


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/browser/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")
    if not path:
        pytest.fail("System Chromium not found at /usr/bin/chromium: install the Debian package `chromium` "
                    "(.ci/run does it). Never `playwright install`.")
    return path


@pytest.fixture
def _allow_orm_beside_playwright(monkeypatch):
    # Playwright's sync API runs an asyncio loop in this thread; Django then refuses ORM calls
    # from it unless told this is deliberate (the test is still fully synchronous).
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def browser_page(chromium_path, live_server, _allow_orm_beside_playwright):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, headless=True, args=LAUNCH_ARGS)
        context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 1000})
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
        page = context.new_page()
        page.set_default_timeout(15_000)
        try:
            yield page
        finally:
            context.close()
            browser.close()


@pytest.fixture
def shot(browser_page):
    """``shot("03-connected")`` saves a full-page screenshot of the current step."""

    def _shot(name: str) -> Path:
        path = ARTIFACTS / f"{name}.png"
        browser_page.screenshot(path=str(path), full_page=True)
        return path

    return _shot
