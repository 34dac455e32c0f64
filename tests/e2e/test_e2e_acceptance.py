"""A rehearsal of the acceptance suite: the product as README.md and ../shared/API.md start it, driven
only through API.md's public names (REST, the webhook URL) against each provider's simulator on loopback.

One stack for the module: gunicorn ``psa.wsgi:application`` and a plain ``celery -A psa worker``, on
``psa.settings`` (not the test settings), with PSA_PUBLIC_BASE_URL unset as the README's default (our
URLs come from the request) and PSA_METRICS_TOKEN set. Each test gets a tenant from ``createtenant``.
Per provider, the minimal journey: connect (PUT + test/) -> organizations (sync job, list, PATCH or
automap) -> devices (sync job) -> a webhook exactly as the provider sends it -> alert -> ticket -> the way
back (resolved / closed) -> Poll now. The per-provider e2e modules go deeper; this one is about the names.
"""

from __future__ import annotations

import json
import os
import re

import httpx
import pytest

from tests.simulators.huntress import HuntressSimulator, new_signing_secret
from tests.simulators.huntress import WebhookSender as SvixSender
from tests.simulators.level import LevelSimulator
from tests.simulators.level import WebhookSender as LevelSender
from tests.simulators.ninjaone import NinjaOneSimulator
from tests.simulators.tactical import TacticalSimulator, render_webhook

from .conftest import running_stack
from .flows import WAIT, all_pages, closed_status, create_client, ok, wait_alert, wait_ticket
from .harness import wait_until

pytestmark = pytest.mark.e2e

METRICS_TOKEN = "acceptance-metrics-token"
JOB_FIELDS = {"id", "kind", "state", "progress", "summary", "error"}
ORG_FIELDS = {"id", "external_id", "name", "parent_external_id", "client", "mapping"}
ALERT_FIELDS = {"id", "provider", "external_id", "condition_key", "severity", "title", "message", "state", "asset",
                "client", "ticket", "occurrence_count", "first_seen", "last_seen"}
TICKET_FIELDS = {"id", "number", "title", "description", "client", "board", "status", "priority", "category",
                 "assignee", "asset", "source", "is_closed", "occurrence_count", "created_at", "updated_at",
                 "closed_at", "related_tickets", "first_seen", "last_seen"}
CARD_FIELDS = {"url", "header_name", "secret", "payload_template"}
EVENT_FIELDS = {"id", "received_at", "status", "error", "summary"}
HEALTH_FIELDS = {"last_webhook_at", "last_poll_at", "last_poll_ok", "last_poll_error", "token_expires_at",
                 "webhook_failures_24h", "queue_lag_seconds", "failed_side_effects", "quiet", "quiet_reason"}


@pytest.fixture(scope="module")
def live_stack(live_db_url, live_redis_url):
    """The product's own settings module and the README's defaults (no public base URL)."""
    with running_stack(live_db_url, live_redis_url, label=f"accept-{os.getpid()}",
                       extra_env={"DJANGO_SETTINGS_MODULE": "psa.settings", "PSA_PUBLIC_BASE_URL": "",
                                  "PSA_METRICS_TOKEN": METRICS_TOKEN}) as stack:
        yield stack


def run_job(api: httpx.Client, path: str) -> dict:
    """POST a long operation (202 + job), then jobs/{id}/ until it ends; it must succeed."""
    started = ok(api.post(path), 202)
    assert JOB_FIELDS <= set(started) and started["state"] in ("queued", "running", "succeeded"), started
    done = wait_until(
        lambda: (j := ok(api.get(f"jobs/{started['id']}/")))["state"] in ("succeeded", "failed") and j,
        WAIT, 0.25, f"job {started['kind']}",
    )
    assert done["state"] == "succeeded", done
    return done


def orgs(api: httpx.Client, provider: str) -> dict[str, dict]:
    rows = list(all_pages(api, f"integrations/{provider}/organizations/"))
    assert rows and all(ORG_FIELDS <= set(r) for r in rows), rows
    return {r["name"]: r for r in rows}


def connect(api: httpx.Client, provider: str, body: dict) -> dict:
    data = ok(api.put(f"integrations/{provider}/", json=body))
    assert data["status"] == "connected", data
    ok(api.post(f"integrations/{provider}/test/"))  # API.md: tests the connection, sets status
    listed = {i["provider"]: i for i in all_pages(api, "integrations/")}
    assert listed[provider]["status"] == "connected" and listed[provider]["connected_at"], listed[provider]
    assert listed[provider]["last_error"] == ""
    return data


def card(api: httpx.Client, provider: str) -> dict:
    answer = ok(api.get(f"integrations/{provider}/webhook/"))
    assert CARD_FIELDS <= set(answer) and answer["header_name"] == "X-PSA-Webhook-Secret", answer
    assert answer["url"].startswith("http://127.0.0.1:") and f"/webhooks/{provider}/" in answer["url"]
    return answer


def alert_of(api: httpx.Client, provider: str, external_id: str, **expect) -> dict:
    found = wait_alert(api, provider, str(external_id), **expect)
    assert ALERT_FIELDS <= set(found), found
    return found


def ticket_of(api: httpx.Client, provider: str, external_id: str) -> dict:
    found = wait_until(lambda: (a := alert_of(api, provider, external_id)) and a["ticket"] and a, WAIT, 0.25,
                       f"a ticket for {provider} alert {external_id}")
    made = ok(api.get(f"tickets/{found['ticket']}/"))
    assert TICKET_FIELDS <= set(made) and made["source"] == "alert", made
    assert made["id"] in {t["id"] for t in all_pages(api, "tickets/", {"source": "alert", "is_closed": "false"})}
    return made


def events_settled(api: httpx.Client, provider: str, count: int) -> list[dict]:
    def check():
        rows = list(all_pages(api, f"integrations/{provider}/events/"))
        return rows if len(rows) >= count and all(e["status"] != "accepted" for e in rows) else None

    rows = wait_until(check, WAIT, 0.25, f"{count} {provider} events processed")
    assert all(EVENT_FIELDS <= set(e) for e in rows)
    assert [e["id"] for e in rows] == sorted((e["id"] for e in rows), reverse=True)  # newest first
    return rows


# -- the public surface around the providers ---------------------------------------------------------------


def test_bootstrap_errors_webhook_answers_and_metrics(live, tenant):
    api = tenant.api
    assert {b["name"] for b in all_pages(api, "boards/")} >= {"General", "Alerts", "Security", "Triage"}
    statuses = {s["name"]: s for s in all_pages(api, "statuses/")}
    assert statuses["New"]["is_default"] and statuses["Closed"]["is_closed"] and "In Progress" in statuses
    assert {p["name"] for p in all_pages(api, "priorities/")} >= {"Low", "Medium", "High", "Critical"}
    listed = {i["provider"]: i for i in all_pages(api, "integrations/")}
    assert set(listed) == {"generic", "ninjaone", "tactical", "level", "huntress"}
    assert all(i["status"] == "not_configured" and i["connected_at"] is None for i in listed.values())

    # The generic provider: PUT {} enables it; the webhook answers of API.md.
    ok(api.put("integrations/generic/", json={}))
    hook = card(api, "generic")
    body = {"event": "trigger", "alert_id": "g-1", "condition": "disk", "severity": "high", "title": "Disk full",
            "message": "C: 97%", "organization": {"id": "org-1", "name": "Acme"},
            "device": {"id": "d-1", "hostname": "web-01", "serial_number": "SN1"},
            "occurred_at": "2026-01-31T12:00:00Z"}
    auth = {hook["header_name"]: hook["secret"], "Content-Type": "application/json"}
    with httpx.Client(timeout=30) as http:
        assert http.post(hook["url"], json=body, headers=auth).status_code == 202
        assert http.post(hook["url"], json=body, headers=auth).status_code == 202  # a redelivery
        bad = http.post(hook["url"], content=b"{not json", headers=auth)
        assert bad.status_code == 400 and "detail" in bad.json()
        assert http.post(hook["url"], json=body).status_code == 401
        assert http.post(hook["url"], json=body, headers={hook["header_name"]: "wrong"}).status_code == 401
        assert http.post(f"{hook['url']}?secret={hook['secret']}", json=body).status_code == 401  # headers work
        assert http.post(hook["url"].replace("/generic/", "/level/"), json=body, headers=auth).status_code == 404
        assert http.post(re.sub(r"/[^/]+/$", "/nokey/", hook["url"]), json=body, headers=auth).status_code == 404
        assert http.post(hook["url"], content=b" " * (1024 * 1024 + 1), headers=auth).status_code == 413
    evs = events_settled(api, "generic", 4)
    assert {e["status"] for e in evs} == {"processed", "duplicate", "failed"}
    alert = alert_of(api, "generic", "g-1", state="unmapped")
    assert alert["ticket"] is None
    processed = next(e for e in evs if e["status"] == "processed")
    assert ok(api.post(f"integrations/generic/events/{processed['id']}/replay/"), 202)
    rotated = ok(api.post("integrations/generic/webhook/rotate/"))
    assert rotated["secret"] != hook["secret"] and rotated["url"] == hook["url"]

    # Errors are JSON; another tenant's ids answer 404.
    other = live.create_tenant(f"Other MSP {os.getpid()}", f"other-{os.getpid()}@e2e.example")
    assert set(other) >= {"tenant_id", "user_id", "api_token"}
    with live.api(other["api_token"]) as stranger:
        for path in (f"alerts/{alert['id']}/", f"integrations/generic/events/{processed['id']}/",
                     f"statuses/{statuses['New']['id']}/"):
            answer = stranger.get(path)
            assert answer.status_code == 404 and answer.json() == {"detail": "Not found."}, path
        assert stranger.get("alerts/", params={"provider": "generic"}).json()["count"] == 0
    with httpx.Client(base_url=f"{live.base_url}/api/v1/", timeout=30) as anonymous:
        answer = anonymous.get("tickets/")
        assert answer.status_code == 401 and "detail" in answer.json()
    refused = api.post("tickets/", content=b"{", headers={"Content-Type": "application/json"})
    assert refused.status_code == 400 and refused.headers["content-type"].startswith("application/json")

    # Prometheus exposition: the token is required; our metrics start with psa_.
    assert httpx.get(f"{live.base_url}/metrics").status_code == 401
    assert httpx.get(f"{live.base_url}/metrics", headers={"Authorization": "Bearer nope"}).status_code in (401, 403)
    scrape = httpx.get(f"{live.base_url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert scrape.status_code == 200 and re.search(r"^# TYPE psa_\w+", scrape.text, re.MULTILINE), scrape.text[:300]


# -- Tactical RMM ------------------------------------------------------------------------------------------------


def test_tactical(tenant):
    api = tenant.api
    ours = create_client(api, "Harbor Dental Group")
    with TacticalSimulator() as sim, httpx.Client(timeout=30) as http:
        harbor = sim.add_client("Harbor Dental Group", ["Main Office"])
        front = sim.add_agent(sim.site_named(harbor["id"], "Main Office")["id"], "HDG-FRONT-01")
        connect(api, "tactical", {"base_url": sim.url, "credentials": {"api_key": sim.api_key}})

        run_job(api, "integrations/tactical/organizations/sync/")
        ok(api.post("integrations/tactical/organizations/automap/"))
        mapped = orgs(api, "tactical")["Harbor Dental Group"]
        assert (mapped["client"], mapped["mapping"]) == (ours["id"], "auto")
        run_job(api, "integrations/tactical/devices/sync/")
        [asset] = all_pages(api, "assets/", {"provider": "tactical"})
        assert asset["external_ids"] == [{"provider": "tactical", "external_id": front.agent_id}]

        # The URL action an admin makes from the card; Tactical renders the URL, headers and body.
        hook = card(api, "tactical")
        headers = json.dumps({"Content-Type": "application/json", hook["header_name"]: hook["secret"]})
        failure = sim.add_alert(front, check_id=803)
        url, sent_headers, body = render_webhook(sim, failure["id"], url=hook["url"], headers_json=headers,
                                                 body_template=hook["payload_template"])
        assert http.post(url, content=body, headers=sent_headers).status_code == 202
        made = ticket_of(api, "tactical", failure["id"])
        assert (made["client"], made["asset"], made["is_closed"]) == (ours["id"], asset["id"], False)
        detail = ok(api.get(f"alerts/{alert_of(api, 'tactical', failure['id'])['id']}/"))
        assert [s["step"] for s in detail["trace"]][:4] == ["attribute", "window", "rule", "dedup"], detail["trace"]

        # Resolved in Tactical: the resolved action (the same template with its literal event) closes it.
        sim.resolve_locally(failure["id"])
        resolved = hook["payload_template"].replace('"event": "trigger"', '"event": "resolved"')
        url, sent_headers, body = render_webhook(sim, failure["id"], url=hook["url"], headers_json=headers,
                                                 body_template=resolved)
        assert http.post(url, content=body, headers=sent_headers).status_code == 202
        wait_ticket(api, made["id"], "the untouched ticket to close", is_closed=True)
        assert alert_of(api, "tactical", failure["id"])["state"] == "resolved"
        assert ok(api.get(f"tickets/{made['id']}/"))["closed_at"]

        poll = run_job(api, "integrations/tactical/alerts/poll/")
        assert poll["kind"] == "alerts.poll"
        health = ok(api.get("integrations/tactical/health/"))
        assert HEALTH_FIELDS <= set(health) and health["last_poll_ok"] is True, health
    assert {e["status"] for e in events_settled(api, "tactical", 2)} == {"processed"}


# -- NinjaOne -----------------------------------------------------------------------------------------------------


def test_ninjaone(tenant):
    api = tenant.api
    ours = create_client(api, "Harbor Dental Group")
    with NinjaOneSimulator(region="app") as sim:
        harbor = sim.add_org("Harbor Dental Group", ["Main Office"])
        device = sim.add_device(harbor["id"], "HDG-FRONT-01", location_id=sim.locations_of(harbor["id"])[0]["id"])
        app = sim.add_app()
        connected = connect(api, "ninjaone", {
            "base_url": sim.url, "settings": {"auth_flow": "client_credentials"},
            "credentials": {"client_id": app.client_id, "client_secret": app.client_secret}})
        assert connected["settings"]["region"] == "app" and app.client_secret not in json.dumps(connected)
        # Connect registered our webhook in NinjaOne, with the card's header and secret.
        hook = card(api, "ninjaone")
        assert sim.webhook and sim.webhook["url"] == hook["url"]
        assert sim.webhook["headers"] == [{"name": hook["header_name"], "value": hook["secret"]}]
        ok(api.delete("integrations/ninjaone/webhook/register/"))
        assert sim.webhook is None
        ok(api.post("integrations/ninjaone/webhook/register/"))
        assert sim.webhook["url"] == hook["url"]

        run_job(api, "integrations/ninjaone/organizations/sync/")
        found = orgs(api, "ninjaone")
        assert found["Main Office"]["parent_external_id"] == found["Harbor Dental Group"]["external_id"]
        patched = ok(api.patch(f"integrations/ninjaone/organizations/{found['Harbor Dental Group']['id']}/",
                               json={"client": ours["id"]}))
        assert (patched["client"], patched["mapping"]) == (ours["id"], "manual")
        run_job(api, "integrations/ninjaone/devices/sync/")
        [asset] = all_pages(api, "assets/", {"provider": "ninjaone"})
        assert asset["client"] == ours["id"] and asset["name"] == "HDG-FRONT-01"

        # A condition triggers: NinjaOne POSTs the activity to the registered URL with its custom header.
        condition = sim.add_alert(device["id"])
        assert sim.deliver(sim.activity(condition, "TRIGGERED", severity="CRITICAL")).status_code == 202
        made = ticket_of(api, "ninjaone", condition["uid"])
        assert (made["client"], made["asset"]) == (ours["id"], asset["id"])
        assert alert_of(api, "ninjaone", condition["uid"])["severity"] == "critical"

        # A technician closes the ticket: the reset reaches NinjaOne, through a side effect done.
        ok(api.patch(f"tickets/{made['id']}/", json={"status": closed_status(api)["id"]}))
        wait_until(lambda: any(uid == condition["uid"] for _, uid, _ in sim.resets), WAIT, 0.25, "the reset call")
        effect = wait_until(lambda: next((s for s in all_pages(api, "side-effects/", {"ticket": made["id"]})
                                          if s["state"] == "done"), None), WAIT, 0.25, "the reset side effect")
        assert {"id", "kind", "state", "attempts", "last_error", "ticket", "alert", "created_at",
                "done_at"} <= set(effect)
        wait_alert(api, "ninjaone", condition["uid"], state="resolved")
        # What NinjaOne sends back about its reset changes nothing more.
        for activity in list(sim.outbox):
            assert sim.deliver(activity).status_code == 202

        run_job(api, "integrations/ninjaone/alerts/poll/")
    assert ok(api.get(f"tickets/{made['id']}/"))["is_closed"] is True


# -- Level ----------------------------------------------------------------------------------------------------------


def test_level(tenant):
    api = tenant.api
    ours = create_client(api, "Harbor Dental Group")
    with LevelSimulator() as sim:
        top = sim.add_group("Harbor Dental Group")
        front = sim.add_device(sim.add_group("Front desk", top), "HDG-FRONT-01")
        # The simulator's address as the base URL, as one would paste it: the API lives under its /v2.
        connect(api, "level", {"base_url": sim.url, "credentials": {"api_key": sim.read_write_key}})

        run_job(api, "integrations/level/organizations/sync/")
        ok(api.post("integrations/level/organizations/automap/"))
        tree = orgs(api, "level")
        assert tree["Front desk"]["parent_external_id"] == tree["Harbor Dental Group"]["external_id"]
        assert tree["Harbor Dental Group"]["client"] == ours["id"]
        run_job(api, "integrations/level/devices/sync/")
        [asset] = all_pages(api, "assets/", {"provider": "level"})
        assert asset["client"] == ours["id"]  # a subgroup's device: the top group's client

        # Level's native webhook, signed with the card's secret (X-Level-Signature).
        hook = card(api, "level")
        with httpx.Client(timeout=30) as http:
            level = LevelSender(secret=hook["secret"],
                                post=lambda u, b, h: http.post(u, content=b, headers=h).status_code)
            problem = sim.add_alert(front, "Disk space low", severity="critical")
            assert level.deliver(hook["url"], sim.alert_event(problem["id"])) == [202]
            made = ticket_of(api, "level", problem["id"])
            assert (made["client"], made["asset"]) == (ours["id"], asset["id"])
            assert LevelSender(secret="mistyped", post=level.post).deliver(
                hook["url"], sim.alert_event(problem["id"]), attempts=1) == [401]

            sim.resolve_locally(problem["id"])
            assert level.deliver(hook["url"], sim.alert_event(problem["id"])) == [202]
            wait_ticket(api, made["id"], "the untouched ticket to close", is_closed=True)
        assert alert_of(api, "level", problem["id"])["state"] == "resolved"
        run_job(api, "integrations/level/alerts/poll/")
    assert sorted(e["status"] for e in events_settled(api, "level", 3)) == ["failed", "processed", "processed"]


# -- Huntress -------------------------------------------------------------------------------------------------------


def test_huntress(tenant):
    api = tenant.api
    ours = create_client(api, "Harbor Dental Group")
    triage = create_client(api, "Security Triage")
    boards = {b["name"]: b["id"] for b in all_pages(api, "boards/")}
    prio = {p["name"]: p["id"] for p in all_pages(api, "priorities/")}
    closed = closed_status(api)
    with HuntressSimulator() as sim:
        harbor = sim.add_org("Harbor Dental Group")
        agent = sim.add_agent(harbor["id"], "HDG-FRONT-01", "7XK2M93")
        signing = new_signing_secret()
        connected = connect(api, "huntress", {"base_url": sim.url, "credentials": {
            "api_key": sim.rw_key, "api_secret": sim.rw_secret, "webhook_signing_secret": signing}})
        assert signing not in json.dumps(connected) and sim.rw_secret not in json.dumps(connected)

        run_job(api, "integrations/huntress/organizations/sync/")
        ok(api.post("integrations/huntress/organizations/automap/"))
        assert orgs(api, "huntress")["Harbor Dental Group"]["mapping"] == "auto"
        assert orgs(api, "huntress")["Harbor Dental Group"]["client"] == ours["id"]

        routing = ok(api.put("integrations/huntress/routing/", json={
            "security_board": boards["Security"], "category": None, "fallback_client": triage["id"],
            "fallback_board": boards["Triage"], "priority_critical": prio["Critical"],
            "priority_high": prio["High"], "priority_low": prio["Low"], "poll_interval_minutes": 5,
            "close_on_resolve": True, "closed_status": closed["id"]}))
        assert routing["security_board"] == boards["Security"] and routing["closed_status"] == closed["id"]
        status = ok(api.get("integrations/huntress/status/"))
        assert {"account_name", "organization_count", "unmapped_count", "open_incident_count", "last_poll_at",
                "last_poll_ok", "last_poll_error", "routing_complete"} <= set(status)
        assert (status["account_name"], status["organization_count"], status["unmapped_count"],
                status["routing_complete"]) == ("Example MSP", 1, 0, True)

        # An incident report, Svix-signed as Huntress posts it -> a ticket on the security board.
        hook = card(api, "huntress")
        svix = SvixSender(hook["url"], signing)
        incident = sim.add_incident(harbor["id"], agent["id"], severity="critical")
        assert svix.send(sim.incident_webhook(incident["id"])).attempts[0][0] == 202
        made = wait_until(lambda: next(iter(all_pages(api, "tickets/", {"source": "huntress"})), None), WAIT, 0.25,
                          "the incident's ticket")
        assert (made["board"], made["client"], made["priority"], made["is_closed"]) == (
            boards["Security"], ours["id"], prio["Critical"], False)
        assert ok(api.get("integrations/huntress/status/"))["open_incident_count"] == 1
        assert SvixSender(hook["url"], new_signing_secret(), delays=(0.0,)).send(
            sim.incident_webhook(incident["id"])).attempts[0][0] == 401

        # Closed in Huntress -> the ticket closes with the routing's closed status.
        sim.close_incident(incident["id"])
        assert svix.send(sim.incident_webhook(incident["id"], "incident_report.closed")).delivered
        done = wait_ticket(api, made["id"], "the closed incident's ticket to close", is_closed=True)
        assert done["status"] == closed["id"]

        run_job(api, "integrations/huntress/alerts/poll/")
        status = ok(api.get("integrations/huntress/status/"))
        assert status["last_poll_ok"] is True and status["last_poll_at"] and status["open_incident_count"] == 0
    assert len(list(all_pages(api, "tickets/", {"source": "huntress"}))) == 1
