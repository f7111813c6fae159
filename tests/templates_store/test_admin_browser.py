"""The template version page's "legacy and converted renderings" panel as a browser lays it out:
headless Chromium (Debian's chromium + chromium-driver) against a real `runserver` on the test
database, logged in as an admin would be."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from selenium import webdriver
from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from notify.tenants.services import create_tenant
from templates_store import services
from templates_store.models import Template, TemplateVersion
from tests.webserver import WebServer

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
INSTALL_HINT = "apt-get install -y chromium chromium-driver (.ci/run installs them when missing)"
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)
ADMIN_USER, ADMIN_PASSWORD = "root", "a-long-enough-password"

# A known sample whose two renderings differ, with a line far longer than any screen is wide and
# no space to break it at: the panel must wrap it, not stretch to fit it.
TRACKING_URL = "https://shop.example.com/track?" + "&".join(f"item{i}=v{i}" for i in range(60))
LEGACY_BODY = (
    "Dear $name, your parcel for order $order will arrive within three to five working days. "
    "Track it here: $url\nThank you for shopping with us."
)
CONVERTED_BODY = (
    "Dear {{ name }}, your parcel for order {{ order }} should arrive within three to five "
    "working days. Track it here: {{ url }}\nThanks for shopping with us."
)
SAMPLE = {"name": "Ann", "order": "A-1001", "url": TRACKING_URL}
LEGACY_OUTPUT_START = "Dear Ann, your parcel for order A-1001 will arrive within three"
NEW_OUTPUT_START = "Dear Ann, your parcel for order A-1001 should arrive within three"


@pytest.fixture(scope="module")
def browser(tmp_path_factory) -> Iterator[WebDriver]:  # noqa: ANN001
    """Headless Chromium. Missing or unable to start is a failure, not a skip: CI installs it."""
    for binary in (CHROMIUM, CHROMEDRIVER):
        if not (binary.is_file() and os.access(binary, os.X_OK)):
            pytest.fail(f"{binary} not found: {INSTALL_HINT}", pytrace=False)
    workdir = tmp_path_factory.mktemp("chromium")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in CHROMIUM_ARGS:
        options.add_argument(argument)
    options.add_argument(f"--user-data-dir={workdir / 'profile'}")
    # A driver path given to Service means Selenium Manager is never run (it would download).
    service = Service(str(CHROMEDRIVER), log_output=str(workdir / "chromedriver.log"))
    try:
        driver = webdriver.Chrome(service=service, options=options)
    except WebDriverException as exc:
        driver_log = (workdir / "chromedriver.log").read_text()[-3000:]
        pytest.fail(
            f"headless Chromium did not start ({INSTALL_HINT}): {exc.msg}\n{driver_log}",
            pytrace=False,
        )
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def converted_version(transactional_db) -> TemplateVersion:  # noqa: ANN001
    """Committed, so that the web server process sees it; flushed after the test."""
    get_user_model().objects.create_superuser(ADMIN_USER, "root@example.com", ADMIN_PASSWORD)
    tenant, _ = create_tenant("shop")
    template = Template.all_tenants.create(
        tenant=tenant, key="parcel-shipped", channel="email", legacy_tpl_id="EMAIL_7"
    )
    return services.add_version(
        template,
        subject="Order {{ order }} shipped",
        legacy_subject="Order $order has shipped",
        body=CONVERTED_BODY,
        legacy_body=LEGACY_BODY,
        conversion_status="exact",
        conversion_report={"cases": [{"origin": "sample", "ref": "", "params": SAMPLE}]},
        verified_cases=1,
        mismatches=1,
    )


def _open_version_page(
    browser: WebDriver, server: WebServer, version: TemplateVersion, width: int
) -> None:
    _set_viewport(browser, width, 1000)
    page = reverse("admin:templates_store_templateversion_change", args=[version.pk])
    browser.delete_all_cookies()
    browser.get(f"{server.base_url}{reverse('admin:login')}?next={page}?case=0")
    browser.find_element(By.NAME, "username").send_keys(ADMIN_USER)
    browser.find_element(By.NAME, "password").send_keys(ADMIN_PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "#login-form [type=submit]").click()
    try:
        WebDriverWait(browser, 30).until(
            expected_conditions.presence_of_element_located((By.ID, "version-comparison"))
        )
    except TimeoutException:
        pytest.fail(f"no comparison panel at {browser.current_url} ({browser.title!r})")


def _set_viewport(browser: WebDriver, width: int, height: int) -> None:
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
    )


@contextmanager
def _screenshot_on_failure(browser: WebDriver, path: Path) -> Iterator[None]:
    try:
        yield
    except BaseException as exc:
        width = browser.execute_script("return window.innerWidth")
        height = browser.execute_script("return document.documentElement.scrollHeight")
        _set_viewport(browser, width, min(height, 8000))  # the whole page, panel included
        browser.save_screenshot(str(path))
        exc.add_note(f"screenshot of the page: {path}")
        raise


MEASURE = """
const box = (element) => {
  if (!element) return null;
  const r = element.getBoundingClientRect();
  return {left: r.left, right: r.right, top: r.top, width: r.width, height: r.height,
          scrollWidth: element.scrollWidth, clientWidth: element.clientWidth};
};
const sidebar = document.getElementById('nav-sidebar');
const sidebarShown = sidebar && getComputedStyle(sidebar).display !== 'none';
const panel = document.getElementById('version-comparison');
const body = document.getElementById('comparison-body');
return {
  viewport: window.innerWidth,
  pageScrollWidth: document.documentElement.scrollWidth,
  pageClientWidth: document.documentElement.clientWidth,
  sidebarRight: sidebarShown ? sidebar.getBoundingClientRect().right : 0,
  form: box(document.getElementById('content-main')),
  panel: box(panel),
  legacy: box(body.querySelector('.legacy-rendering')),
  converted: box(body.querySelector('.new-rendering')),
  diff: box(body.querySelector('table.diff')),
  blocks: Array.from(panel.querySelectorAll('pre, table.diff, .comparison-diff')).map(box),
};
"""


def _text(browser: WebDriver, selector: str) -> str:
    return browser.find_element(By.CSS_SELECTOR, selector).text.replace("\xa0", " ")


def _assert_nothing_overflows(layout: dict) -> None:
    panel = layout["panel"]
    assert layout["pageScrollWidth"] <= layout["pageClientWidth"], "the page scrolls sideways"
    for block in layout["blocks"]:
        assert panel["left"] <= block["left"] and block["right"] <= panel["right"] + 0.5, (
            f"a block sticks out of the panel: {block} vs {panel}"
        )
        assert block["scrollWidth"] <= block["clientWidth"], f"long lines cut off: {block}"


@pytest.mark.parametrize("width", [1280, 1600, 1920, 2560])
def test_comparison_panel__desktop_width__as_wide_as_the_form_with_renderings_side_by_side(
    web_server, browser, converted_version, width, tmp_path
):
    # Given an admin on a converted version's page, in a window `width` pixels wide
    _open_version_page(browser, web_server, converted_version, width)
    with _screenshot_on_failure(browser, tmp_path / f"version-page-{width}.png"):
        # When the browser has laid the page out
        layout = browser.execute_script(MEASURE)
        # Then the panel takes most of the content area, the width of the form above it
        assert layout["viewport"] == width
        content_area = width - layout["sidebarRight"]
        panel = layout["panel"]
        assert panel["width"] > 0.5 * content_area, f"panel {panel} in {content_area}px"
        assert panel["width"] >= layout["form"]["width"] - 1
        # And the legacy and the converted output of the sample are shown side by side
        legacy, converted = layout["legacy"], layout["converted"]
        assert legacy["top"] == converted["top"] and legacy["right"] <= converted["left"]
        for rendering in (legacy, converted):
            assert rendering["width"] > 0.4 * panel["width"] and rendering["height"] > 0
        legacy_text = _text(browser, "#comparison-body .legacy-rendering")
        new_text = _text(browser, "#comparison-body .new-rendering")
        assert legacy_text.startswith(LEGACY_OUTPUT_START), f"legacy shows {legacy_text!r}"
        assert legacy_text.endswith("Thank you for shopping with us."), legacy_text
        assert new_text.startswith(NEW_OUTPUT_START), f"converted shows {new_text!r}"
        assert new_text.endswith("Thanks for shopping with us."), new_text
        # And the HTML diff spans the panel, with both sides' lines readable in it
        assert layout["diff"]["width"] > 0.9 * panel["width"]
        diff_text = _text(browser, "#comparison-body table.diff")
        assert "Thank you for shopping" in diff_text, f"diff shows {diff_text!r}"
        assert "Thanks for shopping" in diff_text, f"diff shows {diff_text!r}"
        # And the long tracking link wraps inside the panel instead of widening anything
        _assert_nothing_overflows(layout)


def test_comparison_panel__narrow_window__renderings_stacked_within_the_page(
    web_server, browser, converted_version, tmp_path
):
    # Given an admin on a converted version's page, in a window too narrow for two columns
    _open_version_page(browser, web_server, converted_version, 700)
    with _screenshot_on_failure(browser, tmp_path / "version-page-700.png"):
        # When the browser has laid the page out
        layout = browser.execute_script(MEASURE)
        # Then the renderings are stacked, each as wide as the panel
        panel, legacy, converted = layout["panel"], layout["legacy"], layout["converted"]
        assert panel["width"] > 0.9 * layout["viewport"]
        assert legacy["top"] < converted["top"]
        assert legacy["width"] > 0.9 * panel["width"] and converted["width"] > 0.9 * panel["width"]
        legacy_text = _text(browser, "#comparison-body .legacy-rendering")
        new_text = _text(browser, "#comparison-body .new-rendering")
        assert legacy_text.startswith(LEGACY_OUTPUT_START), f"legacy shows {legacy_text!r}"
        assert new_text.startswith(NEW_OUTPUT_START), f"converted shows {new_text!r}"
        # And nothing sticks out of the page
        _assert_nothing_overflows(layout)
