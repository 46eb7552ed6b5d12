"""Browser tests: Playwright driving Debian's Chromium against a live server on demo data."""

import os
import shutil
from pathlib import Path

import pytest
from django.core.management import call_command

# Playwright's sync API runs an event loop in the test's thread; the ORM calls the tests make
# beside it are still synchronous ones, which Django's guard cannot tell apart.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def chromium_path():
    path = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium")
    if not path:
        pytest.fail("browser tests need Debian's chromium (apt-get install chromium)")
    return path


@pytest.fixture(scope="session")
def browser(chromium_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def demo_data(settings, tmp_path, transactional_db):
    """The demo world, built and synced as `script/server` does it."""
    settings.DATA_DIR = tmp_path
    settings.GIT_LOCAL_ROOTS = [tmp_path]
    settings.MIRROR_DIR = tmp_path / "mirrors"
    call_command("demo")


@pytest.fixture
def page(browser, live_server, django_user_model, demo_data):
    """A logged-in page whose console errors and uncaught exceptions fail the test."""
    django_user_model.objects.create_superuser("reviewer", password="browser-test-pw-1")
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on(
        "response",
        lambda r: errors.append(f"HTTP {r.status} for {r.url}") if r.status >= 400 else None,
    )
    page.goto("/login/")
    page.fill("input[name=username]", "reviewer")
    page.fill("input[name=password]", "browser-test-pw-1")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    yield page
    context.close()
    assert not errors, f"console errors: {errors}"


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
