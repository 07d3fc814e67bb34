"""A real browser (Debian's chromium, driven through chromedriver) against the service running
under gunicorn with DEBUG on: the browsable API works end to end, and Swagger UI needs no CDN.

Install the browser with `.ci/install-browser`. Without it these tests are skipped, unless
`REQUIRE_BROWSER=1` (as in CI), where they fail.
"""

import json
import os
import urllib.request
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from tasks.authentication import issue_token
from tasks.tests.live_server import LiveServer, fresh_database_url

pytestmark = [pytest.mark.browser, pytest.mark.live, pytest.mark.database_independent]

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WAIT_SECONDS = 15


@pytest.fixture(scope="module")
def browser_installed() -> None:
    """Skips (or, with REQUIRE_BROWSER=1, fails) when Debian's chromium or its driver is missing."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if missing:
        reason = f"no browser ({', '.join(missing)} missing): run .ci/install-browser"
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture
def browser(browser_installed, tmp_path):
    """A headless chromium with a fresh profile. Both paths are explicit, so selenium-manager
    never looks anything up or downloads anything."""
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",  # containers often have a tiny /dev/shm
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def server(browser_installed, tmp_path_factory):
    """The service under gunicorn with DEBUG on, on a database of its own (PostgreSQL on the
    PostgreSQL run). Not started when there is no browser to drive it."""
    database_url, drop_database = fresh_database_url(tmp_path_factory.mktemp("live"))
    env = {
        "DEBUG": "true",
        "GUNICORN_ALLOW_DEBUG": "true",  # gunicorn refuses DEBUG otherwise
        "DATABASE_URL": database_url,
        "BETTER_AUTH_SECRET": settings.BETTER_AUTH_SECRET,
    }
    try:
        with LiveServer(env) as live_server:
            yield live_server
    finally:
        drop_database()


def wait_for(driver, condition):
    return WebDriverWait(driver, WAIT_SECONDS).until(condition)


def response_text(driver) -> str:
    """The browsable API's rendering of the response: status line, headers, blank line, body."""
    return wait_for(
        driver, EC.presence_of_element_located((By.CSS_SELECTOR, ".response-info"))
    ).text


def status_shown(status_line: str):
    """Waits for the browsable API to show a response with this status line."""
    return EC.text_to_be_present_in_element((By.CSS_SELECTOR, ".response-info"), status_line)


def response_json(driver) -> dict:
    return json.loads(response_text(driver).split("\n\n", 1)[1])


def post_with_html_form(driver, **fields: str) -> None:
    """Fill in the "HTML form" tab of the browsable API's POST form and press its button."""
    driver.find_element(By.CSS_SELECTOR, "a[href='#post-object-form']").click()
    form = driver.find_element(By.ID, "post-object-form")
    for name, value in fields.items():
        form.find_element(By.NAME, name).send_keys(value)
    form.find_element(By.TAG_NAME, "button").click()


def get_json(url: str, token: str) -> dict:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def test_a_user_can_log_in_create_list_and_toggle_a_task_in_the_browsable_api(browser, server):
    token = issue_token("browser-user")
    title = f"Buy milk {uuid.uuid4().hex[:8]}"

    browser.get(f"{server.url}/dev/login")
    browser.find_element(By.ID, "token").send_keys(token)
    browser.find_element(By.ID, "login").click()
    wait_for(browser, EC.url_to_be(f"{server.url}/v1/tasks"))
    assert "HTTP 200 OK" in response_text(browser)

    post_with_html_form(browser, title=title)
    wait_for(browser, status_shown("HTTP 201 Created"))
    task_id = response_json(browser)["id"]

    browser.get(f"{server.url}/v1/tasks")
    assert title in response_text(browser)

    browser.get(f"{server.url}/v1/tasks/{task_id}/toggle")
    post_with_html_form(browser)
    wait_for(browser, status_shown("HTTP 200 OK"))
    assert response_json(browser)["completed"] is True

    task = get_json(f"{server.url}/v1/tasks/{task_id}", token)
    assert task["title"] == title
    assert task["completed"] is True


def test_swagger_ui_renders_with_every_asset_served_by_the_service_itself(browser, server):
    browser.get(f"{server.url}/v1/docs")
    wait_for(browser, EC.presence_of_element_located((By.CSS_SELECTOR, ".swagger-ui .opblock")))
    paths = {
        element.text.replace("\u200b", "")  # Swagger UI puts zero-width spaces in long paths
        for element in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")
    }
    assert {"/v1/tasks", "/v1/tasks/{id}", "/v1/tasks/{id}/toggle"} <= paths

    # Every request the docs page made (the browser's own start page is left out).
    docs_url = f"{server.url}/v1/docs"
    requested, statuses, failures = {}, {}, {}
    for entry in browser.get_log("performance"):
        event = json.loads(entry["message"])["message"]
        params = event.get("params", {})
        if event["method"] == "Network.requestWillBeSent" and params["documentURL"] == docs_url:
            if not params["request"]["url"].startswith("data:"):
                requested[params["requestId"]] = params["request"]["url"]
        elif event["method"] == "Network.responseReceived":
            statuses[params["requestId"]] = params["response"]["status"]
        elif event["method"] == "Network.loadingFailed":
            failures[params["requestId"]] = params["errorText"]
    assert any(url.endswith("/swagger-ui-bundle.js") for url in requested.values())
    assert any(url.endswith("/v1/schema") for url in requested.values())
    problems = [
        f"{url}: {failures.get(request_id) or statuses.get(request_id)}"
        for request_id, url in requested.items()
        if not url.startswith(f"{server.url}/")
        or request_id in failures
        or not 200 <= statuses.get(request_id, 0) < 400
    ]
    assert problems == []
