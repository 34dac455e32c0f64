"""Fair share with real workers: one tenant's storm never makes another tenant (or a security lane of
the same tenant) wait behind its backlog (alerts.services.dispatch).

The storm is posted faster than the worker drains it, so a backlog builds; meanwhile a trickle
arrives in the other lane. Each trickle alert must be ticketed within a bound while the storm is
still draining (its backlog still large when the trickle's ticket appears): with a first-in
first-out queue it would wait for the whole backlog ahead of it. Nothing of the storm is lost.
The bound bounds a broken dispatcher, not a speed claim: bench/fairness.py prints the figures.
"""

from __future__ import annotations

import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from alerts.models import InboundEvent

from .flows import GenericWebhook, alert, create_client, map_org, ok, wait_alert, wait_events_settled
from .harness import wait_until

pytestmark = pytest.mark.e2e

STORM = 1200
TRICKLE_BOUND = 8.0  # seconds from a trickle alert's 202 to its ticket, while the storm drains
STILL_DRAINING = 200  # the storm's backlog when a trickle alert was served proves it did not queue behind it


def tenant_with_generic(live, name: str):
    created = live.create_tenant(name, f"admin-{name.lower().replace(' ', '-')}-{os.getpid()}@e2e.example")
    api = live.api(created["api_token"])
    hook = GenericWebhook(api)
    client = create_client(api, "Acme")
    assert hook.send("trigger", "probe", "probe").status_code == 202
    wait_alert(api, "generic", "probe", state="unmapped")
    map_org(api, "generic", "org-1", client["id"])
    return created["tenant_id"], api, hook


def storm(hook: GenericWebhook, n: int) -> list[int]:
    """Post ``n`` distinct conditions from 8 connections; returns the status codes."""
    def post(i: int) -> int:
        body = json.dumps({"event": "trigger", "alert_id": f"storm-{i}", "condition": f"cond-{i}",
                           "severity": "high", "organization": {"id": "org-1", "name": "Acme Org"},
                           "device": {"id": f"dev-{i % 50}", "hostname": f"host-{i % 50}"}}).encode()
        return hook.post_raw(body).status_code

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(post, range(n)))


def backlog(tenant_id: int) -> int:
    return InboundEvent.objects.unscoped().filter(tenant_id=tenant_id, status="accepted").count()


def trickle(send, ticket_of, storm_tenant: int, stop: threading.Event) -> list[tuple[float, int]]:
    """One alert every half second until ``stop``; (latency to its ticket, storm backlog then) each."""
    served: list[tuple[float, int]] = []
    n = 0
    while not stop.is_set() and n < 30:
        n += 1
        t0 = time.monotonic()
        external_id = send(n)
        wait_until(lambda eid=external_id: ticket_of(eid), 60, 0.05, f"trickle alert {external_id} ticketed")
        served.append((time.monotonic() - t0, backlog(storm_tenant)))
        time.sleep(max(0.0, 0.5 - (time.monotonic() - t0)))
    return served


def assert_fair(served: list[tuple[float, int]]) -> None:
    assert served, "no trickle alert was sent during the storm"
    latencies = sorted(latency for latency, _ in served)
    assert latencies[-1] < TRICKLE_BOUND, latencies
    assert any(left >= STILL_DRAINING for _, left in served), (
        f"the storm drained before the trickle was measured: {served}")


def run_storm_beside(trickle_fn, storm_hook, storm_tenant: int) -> list[tuple[float, int]]:
    stop = threading.Event()
    result: list[list[tuple[float, int]]] = []
    storm_thread = threading.Thread(target=lambda: result.append(storm(storm_hook, STORM)), daemon=True)
    storm_thread.start()
    wait_until(lambda: backlog(storm_tenant) >= STILL_DRAINING, 60, 0.05, "a storm backlog")
    served = trickle_fn(stop)
    stop.set()
    storm_thread.join(120)
    assert result and set(result[0]) == {202}, "every storm webhook is accepted"
    return served


def test_a_storm_in_one_tenant_does_not_delay_another_tenants_alerts(live):
    storm_tenant, storm_api, storm_hook = tenant_with_generic(live, "Storm MSP")
    _, quiet_api, quiet_hook = tenant_with_generic(live, "Quiet MSP")

    def send(n: int) -> str:
        assert quiet_hook.send("trigger", f"quiet-{n}", f"quiet-{n}").status_code == 202
        return f"quiet-{n}"

    def ticket_of(external_id: str):
        a = alert(quiet_api, "generic", external_id)
        return a and a["ticket"]

    served = run_storm_beside(lambda stop: trickle(send, ticket_of, storm_tenant, stop), storm_hook, storm_tenant)
    assert_fair(served)
    # The storm loses nothing: every firing is processed into an alert (the storm guard may hold the
    # excess of new conditions on one "alert storm" ticket, but every alert is there).
    wait_events_settled(storm_api, "generic", STORM + 1, timeout=300)
    page = ok(storm_api.get("alerts/", params={"provider": "generic", "page_size": 1}))
    assert page["count"] == STORM + 1  # and the probe
    for hook in (storm_hook, quiet_hook):
        hook.close()


def test_a_storm_in_one_integration_does_not_delay_the_security_lane_of_the_same_tenant(live):
    tenant_id, api, hook = tenant_with_generic(live, "Busy MSP")
    # The test-only kit provider declares the security lane (tests/kit_provider).
    ok(api.put("integrations/kit/", json={"credentials": {"token": "kit-token-123456"}}))
    job = ok(api.post("integrations/kit/organizations/sync/"), 202)
    wait_until(lambda: ok(api.get(f"jobs/{job['id']}/"))["state"] == "succeeded", 60, 0.2, "kit org sync")
    client = create_client(api, "Kit Client")
    map_org(api, "kit", "k1", client["id"])
    card = ok(api.get("integrations/kit/webhook/"))
    http = httpx.Client(timeout=30)

    def send(n: int) -> str:
        body = json.dumps({"id": f"sec-{n}", "title": "Ransomware canary", "severity": "sev1",
                           "device": "d1", "check": f"canary-{n}", "org": "k1"}).encode()
        r = http.post(card["url"], content=body, headers={card["header_name"]: card["secret"],
                                                          "Content-Type": "application/json"})
        assert r.status_code == 202, r.text
        return f"sec-{n}"

    def ticket_of(external_id: str):
        a = alert(api, "kit", external_id)
        return a and a["ticket"]

    served = run_storm_beside(lambda stop: trickle(send, ticket_of, tenant_id, stop), hook, tenant_id)
    assert_fair(served)
    wait_events_settled(api, "generic", STORM + 1, timeout=300)
    http.close()
    hook.close()
