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
    """Fill in the "HTML form" tab of the browsable API's POST form and press its button. A
    `datetime-local` input is set as the browser's date picker sets it (its typed form depends on
    the locale)."""
    driver.find_element(By.CSS_SELECTOR, "a[href='#post-object-form']").click()
    form = driver.find_element(By.ID, "post-object-form")
    for name, value in fields.items():
        field = form.find_element(By.NAME, name)
        if field.get_attribute("type") == "datetime-local":
            driver.execute_script("arguments[0].value = arguments[1]", field, value)
        else:
            field.send_keys(value)
    form.find_element(By.TAG_NAME, "button").click()


def get_json(url: str, token: str) -> dict:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def log_in(driver, server, token: str) -> None:
    driver.get(f"{server.url}/dev/login")
    driver.find_element(By.ID, "token").send_keys(token)
    driver.find_element(By.ID, "login").click()
    wait_for(driver, EC.url_to_be(f"{server.url}/v1/tasks"))


def test_a_user_can_log_in_create_list_and_toggle_a_task_in_the_browsable_api(browser, server):
    token = issue_token("browser-user")
    title = f"Buy milk {uuid.uuid4().hex[:8]}"

    browser.get(f"{server.url}/dev/login")
    # DRF's own login page, styled by its stylesheets.
    assert browser.find_elements(By.CSS_SELECTOR, "link[href*='rest_framework/css/bootstrap']")
    log_in(browser, server, token)
    assert "HTTP 200 OK" in response_text(browser)
    # The caller is the token's user id; the breadcrumb names only resources.
    assert browser.find_element(By.ID, "current-user").text.strip() == "browser-user"
    breadcrumb = browser.find_element(By.CSS_SELECTOR, ".breadcrumb").text
    assert breadcrumb == "Task List", breadcrumb

    # The HTML form sets a due date (its datetime-local input has no offset: UTC) and labels.
    post_with_html_form(
        browser, title=title, due_at="2030-06-07T17:30", labels="home, errands , home"
    )
    wait_for(browser, status_shown("HTTP 201 Created"))
    created = response_json(browser)
    assert created["due_at"] == "2030-06-07T17:30:00Z"
    assert created["labels"] == ["home", "errands"]
    task_id = created["id"]

    browser.get(f"{server.url}/v1/tasks")
    assert title in response_text(browser)

    # The "Raw data" tab starts from the schema's example of a create, which works as is.
    browser.find_element(By.CSS_SELECTOR, "a[href='#post-generic-content-form']").click()
    form = browser.find_element(By.ID, "post-generic-content-form")
    example = json.loads(form.find_element(By.NAME, "_content").get_attribute("value"))
    assert example["title"] == "Buy milk"
    form.find_element(By.TAG_NAME, "button").click()
    wait_for(browser, status_shown("HTTP 201 Created"))
    assert response_json(browser)["labels"] == example["labels"]

    # Extra Actions on the task: Toggle is a button that POSTs; nothing opens on a 405.
    browser.get(f"{server.url}/v1/tasks/{task_id}")
    wait_for(browser, status_shown("HTTP 200 OK"))
    assert "Task Instance" in browser.find_element(By.CSS_SELECTOR, ".breadcrumb").text
    browser.find_element(By.ID, "extra-actions-menu").click()
    links = [
        link.get_attribute("href")
        for link in browser.find_elements(By.CSS_SELECTOR, ".dropdown-menu a[href^='http']")
    ]
    assert not [link for link in links if link.endswith(("/toggle", "/move"))], links
    toggle = wait_for(
        browser,
        EC.element_to_be_clickable(
            (By.XPATH, "//form[contains(@class, 'extra-action-form')]/button[text()='Toggle']")
        ),
    )
    toggle.click()
    wait_for(browser, status_shown("HTTP 200 OK"))
    assert response_json(browser)["completed"] is True

    task = get_json(f"{server.url}/v1/tasks/{task_id}", token)
    assert task["title"] == title
    assert task["completed"] is True

    # The same form edits the task (PUT), its labels shown comma-separated.
    browser.get(f"{server.url}/v1/tasks/{task_id}")
    browser.find_element(By.CSS_SELECTOR, "a[href='#put-object-form']").click()
    labels = browser.find_element(By.CSS_SELECTOR, "#put-object-form input[name='labels']")
    assert labels.get_attribute("value") == "home, errands"

    # Log out: the cookie is gone, the API asks for a token again.
    browser.find_element(By.ID, "current-user").click()
    wait_for(browser, EC.element_to_be_clickable((By.ID, "logout"))).click()
    wait_for(browser, EC.url_to_be(f"{server.url}/dev/login"))
    assert browser.get_cookie("dev_api_token") is None
    browser.get(f"{server.url}/v1/tasks")
    wait_for(browser, status_shown("HTTP 401 Unauthorized"))


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


def swagger_authorize(driver, token: str) -> None:
    """Swagger UI's "Authorize": the bearer token for every "Try it out"."""
    driver.find_element(By.CSS_SELECTOR, ".auth-wrapper .authorize").click()
    modal = wait_for(driver, EC.visibility_of_element_located((By.CSS_SELECTOR, ".modal-ux")))
    modal.find_element(By.CSS_SELECTOR, "input").send_keys(token)
    modal.find_element(By.CSS_SELECTOR, "button.authorize").click()
    wait_for(driver, EC.element_to_be_clickable((By.CSS_SELECTOR, ".modal-ux .btn-done"))).click()


def swagger_try_out(driver, operation_id: str, **parameters: str) -> tuple[int, dict]:
    """Open an operation, "Try it out" with its example body as is (filling in only the given
    parameters), "Execute": the status and body the response panel shows."""
    operation = driver.find_element(By.CSS_SELECTOR, f"[id$='-{operation_id}']")
    driver.execute_script("arguments[0].scrollIntoView()", operation)
    operation.find_element(By.CSS_SELECTOR, ".opblock-summary").click()
    wait_for(
        driver,
        EC.element_to_be_clickable((By.CSS_SELECTOR, f"[id$='-{operation_id}'] .try-out__btn")),
    ).click()
    for name, value in parameters.items():
        operation.find_element(By.CSS_SELECTOR, f"tr[data-param-name='{name}'] input").send_keys(
            value
        )
    operation.find_element(By.CSS_SELECTOR, "button.execute").click()
    status = wait_for(
        driver,
        EC.visibility_of_element_located(
            (
                By.CSS_SELECTOR,
                f"[id$='-{operation_id}'] .live-responses-table .response .response-col_status",
            )
        ),
    )
    body = operation.find_element(
        By.CSS_SELECTOR, ".live-responses-table .response-col_description pre"
    )
    return int(status.text.split()[0]), json.loads(body.text)


def test_swagger_ui_try_it_out_works_on_the_first_click(browser, server):
    """Create (with the example body as is), toggle and list, as a new user clicks them."""
    token = issue_token("swagger-user")
    browser.get(f"{server.url}/v1/docs")
    wait_for(browser, EC.presence_of_element_located((By.CSS_SELECTOR, ".swagger-ui .opblock")))
    swagger_authorize(browser, token)

    status, created = swagger_try_out(browser, "createTask")
    assert status == 201, created
    assert (created["title"], created["labels"]) == ("Buy milk", ["home"])

    status, toggled = swagger_try_out(browser, "toggleTask", id=created["id"])
    assert status == 200, toggled
    assert toggled["completed"] is True

    status, listed = swagger_try_out(browser, "listTasks")
    assert status == 200, listed
    assert [task["id"] for task in listed["results"]] == [created["id"]]
