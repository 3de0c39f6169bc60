"""The web UI against a secured master (HTTPS with a self-signed certificate, HTTP
credentials), in headless Chromium, each test on a fresh browser profile: without
credentials the master answers the page itself with 401 and nothing of the cluster is
shown; with them (given as the browser's basic-auth prompt would: the browser keeps
them for the master's address and sends them with every request, the event stream's
included) the overview loads and a task launched afterwards shows up RUNNING live."""
from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Iterator

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

import corral
from corral.security.links import Credential
from corral.testing.cluster import LocalCluster, wait_for

from browser import chromium, console_errors, save_screenshot, trusting
from support import RecordingScheduler, make_certificate

pytestmark = pytest.mark.slow

#: issue 24's limit for a new task to show up live
LIVE_LIMIT = 2.0


@pytest.fixture(scope="module")
def secured() -> Iterator[LocalCluster]:
    root = Path(tempfile.mkdtemp(prefix="corral-secure-ui-"))
    cert, key = make_certificate(root)
    try:
        with LocalCluster(root / "cluster", agents=1, secure=True, tls=(cert, key),
                          agent_flags=["--no-switch-user"]) as cluster:
            yield cluster
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def fresh_browser(secured: LocalCluster, tmp_path: Path):
    """A browser that trusts the cluster's certificate and has no credentials yet."""
    driver = chromium(tmp_path / "profile", trusting(secured.tls[0]))
    try:
        yield driver
    finally:
        driver.quit()


def js(driver, expression: str):
    return driver.execute_script(f"return {expression};")


def test_without_credentials_nothing_is_shown(fresh_browser, secured: LocalCluster, tmp_path: Path):
    """Headless Chromium cannot answer the prompt: it gives up on the 401 and shows an
    empty error page, and nothing of the UI or the cluster was sent."""
    for path in ("/#/", "/ui/app.js", "/state"):
        fresh_browser.get(f"https://{secured.master_address}{path}")
        assert js(fresh_browser, "document.getElementById('main')") is None  # not the UI's page
        assert js(fresh_browser, "window.corralFirstRender") is None
        shown = js(fresh_browser, "document.documentElement.outerHTML")
        assert "frameworks" not in shown and "corral" not in shown, shown
        refused = [e["message"] for e in console_errors(fresh_browser) if "status of 401" in e["message"]]
        assert refused, f"no 401 for {path}"
    save_screenshot(fresh_browser, tmp_path, "secured-without-credentials")


def test_with_credentials_the_overview_loads_and_a_task_appears_live(fresh_browser, secured: LocalCluster,
                                                                     tmp_path: Path, monkeypatch):
    assert secured.secure is not None
    address = secured.master_address
    # what the prompt would do: the browser gets the credentials once, keeps them for the
    # master's address, and the page (which drops them from its address) goes on with them
    fresh_browser.get(f"https://operator:{secured.secure.operator_secret}@{address}/#/tasks")
    wait_for(lambda: js(fresh_browser, "window.corralFirstRender"), 15, "the UI's first render")
    assert js(fresh_browser, "location.href") == f"https://{address}/#/tasks"
    wait_for(lambda: js(fresh_browser, "document.getElementById('live').textContent") == "live", 10,
             "the event stream to be live")
    fresh_browser.execute_script("window.notReloaded = true;")
    Select(fresh_browser.find_element(By.CSS_SELECTOR, 'select[data-filter="state"]')).select_by_value("")

    monkeypatch.setenv("CORRAL_TLS_CA", str(secured.tls[0]))
    scheduler = RecordingScheduler()
    driver = corral.SchedulerDriver(scheduler, corral.FrameworkInfo(name="ui-secured", user=""),
                                    secured.client_env()["CORRAL_MASTER"],
                                    credential=Credential.load(secured.secure.framework_key, secured.secure.master_public))
    driver.start()
    try:
        task_id = f"live-{uuid.uuid4().hex[:8]}"
        scheduler.pending.append((task_id, "sleep 600"))
        assert scheduler.wait(lambda: "TASK_RUNNING" in scheduler.states(task_id)), scheduler

        def shown_running() -> bool:
            rows = fresh_browser.find_elements(By.XPATH, f'//tr[td/a[text()="{task_id}"]]')
            return bool(rows) and "TASK_RUNNING" in rows[0].text

        wait_for(shown_running, LIVE_LIMIT, f"{task_id} shown as TASK_RUNNING")
        assert js(fresh_browser, "window.notReloaded") is True
        fresh_browser.get(f"https://{address}/#/")  # the overview, with the kept credentials
        wait_for(lambda: js(fresh_browser, "window.corralFirstRender"), 15, "the overview's first render")
        wait_for(lambda: fresh_browser.find_element(By.ID, "framework-count").text == "1", 5, "the framework count")
        assert fresh_browser.find_element(By.ID, "agent-count").text == "1"
        save_screenshot(fresh_browser, tmp_path, "secured-overview")
        assert console_errors(fresh_browser) == []
    finally:
        driver.stop()
