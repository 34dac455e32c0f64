"""The harness itself: the documented processes start, serve the API and run tasks."""

import pytest

pytestmark = pytest.mark.e2e


def test_live_stack_serves_the_api_with_a_cli_created_tenant(live, tenant):
    boards = tenant.api.get("boards/")
    assert boards.status_code == 200, boards.text
    assert {b["name"] for b in boards.json()["results"]} >= {"General", "Alerts", "Security", "Triage"}
    # Without a token the API refuses, as JSON.
    anon = live.api("not-a-token").get("tickets/")
    assert anon.status_code in (401, 403)
    assert anon.headers["content-type"].startswith("application/json")


def test_worker_survives_kill_and_restart(live):
    pid = live.worker.popen.pid
    live.restart_worker()
    assert live.worker.alive and live.worker.popen.pid != pid
