"""Tactical: a webhook body broken by a double quote is salvaged through the Tactical API.

Tactical renders a value containing ``"`` verbatim into the JSON body template; the result
is not JSON and Tactical sends the whole text as one JSON string literal. The alert id is
also in the webhook URL's query string, so the worker fetches ``GET /alerts/{id}/`` and
processes that instead (facts file, section 2.7).
"""

from __future__ import annotations

import httpx
import pytest

from tests.simulators.tactical import render_webhook

from .flows import all_pages, create_client, ok, wait_alert_ticket, wait_events_settled
from .test_e2e_tactical import send, sim, wait_job  # noqa: F401  (sim is a fixture)

pytestmark = pytest.mark.e2e


def test_double_quote_body_is_salvaged_via_the_alert_api(tenant, sim):  # noqa: F811
    api = tenant.api
    ours = create_client(api, "Harbor Dental Group")
    ok(api.put("integrations/tactical/", json={"base_url": sim.url, "credentials": {"api_key": sim.api_key}}))
    assert (
        wait_job(api, ok(api.post("integrations/tactical/organizations/sync/"), 202))["state"] == "succeeded"
    )
    ok(api.post("integrations/tactical/organizations/automap/"))
    assert any(o["client"] == ours["id"] for o in all_pages(api, "integrations/tactical/organizations/"))
    assert wait_job(api, ok(api.post("integrations/tactical/devices/sync/"), 202))["state"] == "succeeded"

    card = ok(api.get("integrations/tactical/webhook/"))
    broken = sim.add_alert(
        sim.srv, check_id=77, message='HDG-SRV-01 has a ping check: Core router "gw-1" that failed.'
    )
    with httpx.Client(timeout=30) as http:
        # The body really is the broken form: a JSON string, not an object.
        _url, _headers, body = render_webhook(
            sim,
            broken["id"],
            url=card["actions"][0]["pattern"],
            headers_json=card["actions"][0]["rest_headers"],
            body_template=card["actions"][0]["rest_body"],
        )
        assert body.startswith(b'"'), body[:80]
        r = send(http, sim, card, broken["id"], "trigger")
        assert r.status_code == 202, r.text

    t = wait_alert_ticket(api, "tactical", str(broken["id"]))
    assert t["client"] == ours["id"] and t["is_closed"] is False
    assert sim.calls_to("GET", f"/alerts/{broken['id']}/"), (
        "the worker must have fetched the alert from Tactical"
    )
    logged = wait_events_settled(api, "tactical", 1)
    assert [e["status"] for e in logged] == ["processed"], logged
    assert logged[0]["salvaged"] is True, "the event log says the body was salvaged"
