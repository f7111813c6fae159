"""An admin moves a batch from Django admin in a real browser (Playwright driving Debian's
headless Chromium against a real `runserver`): advance, watch the dashboard follow, roll back."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import Browser, Page, expect, sync_playwright

from notify.rollout.models import RolloutBatch, RolloutEvent
from notify.tenants.models import Tenant
from tests.webserver import WebServer

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
INSTALL_HINT = "apt-get install -y chromium (.ci/run installs it when missing)"
ADMIN_USER, ADMIN_PASSWORD = "ops", "a-long-enough-password"
# a guard against a hang, not a speed requirement: the dashboard refreshes every 5 s
WAIT_MS = 20_000


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """Headless Chromium. Missing or unable to start is a failure, not a skip: CI installs it."""
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(f"{CHROMIUM} not found: {INSTALL_HINT}", pytrace=False)
    # Playwright's sync API keeps an event loop in this thread; the test's own database calls
    # are plain synchronous ones all the same
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        )
        try:
            yield browser
        finally:
            browser.close()
            if previous is None:
                os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
            else:
                os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def wave(transactional_db) -> RolloutBatch:  # noqa: ANN001
    """Committed, so that the web server process sees it; flushed after the test."""
    get_user_model().objects.create_superuser(ADMIN_USER, "ops@example.com", ADMIN_PASSWORD)
    batch = RolloutBatch.objects.create(name="wave-1")
    for n, slug in enumerate(["shop", "logi"]):
        Tenant.objects.create(
            slug=slug,
            name=slug.title(),
            app_key=f"ak_{slug}",
            stage=Tenant.Stage.LEGACY,
            rollout_batch=batch,
            rollout_position=n,
        )
    return batch


def log_in(page: Page, server: WebServer) -> None:
    page.goto(f"{server.base_url}/admin/login/?next=/admin/")
    page.fill("input[name=username]", ADMIN_USER)
    page.fill("input[name=password]", ADMIN_PASSWORD)
    page.click("#login-form [type=submit]")
    expect(page.locator("#site-name")).to_be_visible(timeout=WAIT_MS)


def run_batch_action(
    page: Page, server: WebServer, batch: RolloutBatch, action: str, reason: str, done: str
) -> None:
    page.goto(f"{server.base_url}/admin/rollout/rolloutbatch/")
    page.check(f"input[name=_selected_action][value='{batch.pk}']")
    page.select_option("select[name=action]", action)
    page.click("button[name=index]")
    # the action asks why before it does anything
    expect(page.locator("textarea[name=reason]")).to_be_visible(timeout=WAIT_MS)
    page.fill("textarea[name=reason]", reason)
    page.click("input[name=apply]")
    expect(page.locator("ul.messagelist")).to_contain_text(done, timeout=WAIT_MS)


def test_admin_browser__advance_then_roll_back__dashboard_follows_and_log_records_both(
    web_server, chromium, wave
):
    context = chromium.new_context(viewport={"width": 1440, "height": 1000})
    try:
        admin, screen = context.new_page(), context.new_page()
        log_in(admin, web_server)
        # Given the dashboard open on a second screen
        screen.goto(f"{web_server.base_url}/admin/rollout/rolloutbatch/dashboard/")
        stage = screen.locator(f"#batch-{wave.pk} .batch-stage")
        expect(stage).to_have_text("legacy", timeout=WAIT_MS)
        # When the admin advances the batch
        run_batch_action(
            admin, web_server, wave, "advance", "wave 1: shadow from today", "shop legacy→shadow"
        )
        # Then the dashboard shows it on its own, tenant by tenant
        expect(stage).to_have_text("shadow", timeout=WAIT_MS)
        expect(screen.locator("tr[data-tenant=shop] .tenant-stage")).to_have_text("shadow")
        expect(screen.locator("#rollout-events")).to_contain_text("wave 1: shadow from today")
        # When the admin rolls the batch back
        run_batch_action(
            admin, web_server, wave, "roll_back", "drill: back to legacy", "shop shadow→legacy"
        )
        # Then every tenant is on legacy again, on the dashboard and in the database
        expect(stage).to_have_text("legacy", timeout=WAIT_MS)
        expect(screen.locator("#rollout-events")).to_contain_text("drill: back to legacy")
        assert set(Tenant.objects.values_list("stage", flat=True)) == {"legacy"}
        actions = sorted(RolloutEvent.objects.values_list("actor", "action", "tenant_slug"))
        assert actions == [
            ("ops", "advance", "logi"),
            ("ops", "advance", "shop"),
            ("ops", "rollback", "logi"),
            ("ops", "rollback", "shop"),
        ]
    finally:
        context.close()
