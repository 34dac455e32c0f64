"""HuntressClient against the Huntress simulator on loopback: the shared rate budget (1,000 incidents
across 50 organizations, workers sharing it, another tool eating it), paging, watermarks, resolution,
escalations, and Svix-signed webhook deliveries with retries."""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid

import pytest

from integrations import ratelimit
from integrations.errors import AuthFailed, PermissionDenied
from integrations.huntress import normalize, webhooks
from integrations.huntress.client import HuntressClient
from integrations.huntress.incidents import IncidentReader
from tests.simulators.base import Reply, SimulatorServer
from tests.simulators.huntress import HuntressSimulator, WebhookSender, new_signing_secret

# A fast stand-in for Huntress's 60 per 60 s: 20 per half second, same shape.
LIMIT, WINDOW = 20, 0.5


pytestmark = pytest.mark.usefixtures("fast")  # provider HTTP without waiting (tests/conftest.py)


@pytest.fixture
def sim():
    with HuntressSimulator(rate_limit=LIMIT, rate_window=WINDOW, retry_after_integer=False) as s:
        yield s


@pytest.fixture
def rate_key():
    key = f"huntress:sim:{uuid.uuid4().hex}"
    yield key
    ratelimit.reset(key)


@pytest.fixture
def make_client(sim, rate_key):
    made = []

    def _make(key=None, secret=None, **kw):
        kw.setdefault("rate_limit", LIMIT)
        kw.setdefault("rate_window", WINDOW + 0.05)  # our margin over their window, as in production
        kw.setdefault("max_wait", 30)
        c = HuntressClient(sim.url + "/v1", {"api_key": key or sim.api_key, "api_secret": secret or sim.api_secret},
                           rate_key=rate_key, **kw)
        made.append(c)
        return c

    yield _make
    for c in made:
        c.close()


def test_thousand_incidents_across_fifty_orgs_within_the_rate_limit(sim, make_client):
    sim.populate(orgs=50, incidents=1000)
    client = make_client()
    reader = IncidentReader(client, "https://examplemsp.huntress.io")
    records = list(reader.records(client.incident_report_pages(None, page_size=20)))
    assert len(records) == 1000 and len({r.external_id for r in records}) == 1000
    assert len({r.organization_external_id for r in records}) == 50
    assert all(r.organization_name.startswith("Org ") and r.host_name.startswith("HOST-") for r in records)
    # 50 pages of reports + organizations + one list of all 100 agents (cheaper than 100 lookups).
    assert len(sim.calls_to("GET", "/v1/incident_reports")) == 50
    assert len(sim.calls_to("GET", "/v1/agents")) == 1
    assert sim.throttled == 0
    assert sim.max_in_window() <= LIMIT


def test_thousand_incidents_with_another_tool_eating_the_budget(sim, make_client):
    """429s do happen (someone else uses the account); every one is answered by waiting."""
    sim.populate(orgs=50, incidents=1000)
    client = make_client()
    stop = threading.Event()

    def other_tool():
        while not stop.is_set():
            sim.consume(6)
            time.sleep(0.2)

    noise = threading.Thread(target=other_tool)
    noise.start()
    try:
        ids = [r["id"] for page in client.incident_report_pages(None, page_size=25) for r in page]
    finally:
        stop.set()
        noise.join()
    assert sorted(ids) == sorted(sim.incidents) and len(ids) == 1000
    assert sim.throttled > 0  # 429s were answered...
    answered = [c for c in sim.calls if c.path == "/v1/incident_reports" and c.status == 200]
    assert len(answered) == 40  # ...and every page was eventually read, once


def test_two_workers_share_one_budget(sim, make_client):
    sim.populate(orgs=5, incidents=200, agents_per_org=1)
    results: dict[str, list] = {}

    def worker(name):
        client = make_client()
        results[name] = [r["id"] for page in client.incident_report_pages(None, page_size=10) for r in page]

    threads = [threading.Thread(target=worker, args=(n,)) for n in ("a", "b", "c")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(len(ids) == 200 for ids in results.values())
    assert sim.throttled == 0  # one budget for all three: none of them overran Huntress's window
    assert sim.max_in_window() <= LIMIT


@pytest.mark.parametrize("style", ["missing", "null", "empty"])
def test_paging_with_opaque_tokens(sim, make_client, style):
    sim.last_page_style = style
    for i in range(23):
        sim.add_org(f"Org “{i}” O'Brien & Co")
    client = make_client()
    orgs = list(client.organizations(page_size=5))
    assert len(orgs) == 23 and len({o["id"] for o in orgs}) == 23
    tokens = [c.query.get("page_token") for c in sim.calls_to("GET", "/v1/organizations")]
    assert tokens[0] is None and len(tokens) == 5 and len(set(tokens[1:])) == 4


def test_watermark_pass_sees_only_what_changed(sim, make_client):
    sim.populate(orgs=3, incidents=30)
    client = make_client()
    first = list(client.incident_report_pages(None, page_size=7))
    watermark = max(normalize.incident(r).updated_at for p in first for r in p)
    ids = sorted(sim.incidents)
    sim.set_severity(ids[0], "critical")
    sim.approve_remediations(ids[5])
    sim.close_incident(ids[9], "dismissed")
    sim.reset_calls()
    changed = [r for p in client.incident_report_pages(watermark, overlap=dt.timedelta(0), page_size=7) for r in p]
    assert {r["id"] for r in changed} == {ids[0], ids[5], ids[9], ids[-1]}  # ids[-1]: at the watermark itself
    assert len(sim.calls_to("GET", "/v1/incident_reports")) == 1
    by_id = {r["id"]: normalize.incident(r) for r in changed}
    assert by_id[ids[0]].severity == "critical"
    assert by_id[ids[5]].remediations[0].status == "approved"
    assert by_id[ids[5]].remediations[0].approved_by_name == "Ann Tech"
    assert by_id[ids[9]].is_closed and by_id[ids[9]].closed_at is not None


def test_more_than_ten_remediations_are_fetched_in_full(sim, make_client):
    org = sim.add_org("Big")
    report = sim.add_incident(org["id"], remediations=[f"Step {i}" for i in range(13)])
    client = make_client()
    record = IncidentReader(client).one(str(report["id"]))
    assert len(record.remediations) == 13 and record.remediations_total == 13
    assert sim.calls_to("GET", f"/v1/incident_reports/{report['id']}/remediations")


def test_list_shaped_remediations(sim, make_client):
    sim.remediations_shape = "list"
    org = sim.add_org("Legacy")
    report = sim.add_incident(org["id"], remediations=2)
    record = IncidentReader(make_client()).one(str(report["id"]))
    assert [r.status for r in record.remediations] == ["unapproved", "unapproved"]


def test_resolution_rules(sim, make_client):
    org = sim.add_org("Harbor Dental Group")
    report = sim.add_incident(org["id"], remediations=2)
    rid = report["id"]
    read_only = make_client()
    assert read_only.resolve_incident_report(rid).status_code == 403
    writer = make_client(sim.rw_key, sim.rw_secret)
    refused = writer.resolve_incident_report(rid)
    assert refused.status_code == 409 and "remediations" in refused.detail
    sim.approve_remediations(rid)
    done = writer.resolve_incident_report(rid)
    assert done.status_code == 201 and done.incident_report["status"] == "resolved"
    again = writer.resolve_incident_report(rid)
    assert again.status_code == 422
    assert writer.resolve_incident_report(999_999).status_code == 404


def test_resolution_may_read_closed(sim, make_client):
    sim.resolved_word = "closed"
    org = sim.add_org("A")
    report = sim.add_incident(org["id"], remediations=0)
    answer = make_client(sim.rw_key, sim.rw_secret).resolve_incident_report(report["id"])
    result = normalize.resolution(answer.status_code, answer.incident_report)
    assert result.ok and result.status == "closed" and result.incident.is_closed


def test_bad_credentials_and_disabled_account(sim, make_client):
    with pytest.raises(AuthFailed):
        make_client(sim.api_key, "wrong").account()
    sim.account["status"] = "disabled"
    client = make_client()
    assert client.account()["status"] == "disabled"
    with pytest.raises(PermissionDenied):
        list(client.organizations())


def test_escalations(sim, make_client):
    org = sim.add_org("A")
    esc = sim.add_escalation([org["id"]], severity="critical")
    sim.resolve_escalation(esc["id"])
    rows = [r for p in make_client().escalation_pages(None) for r in p]
    record = normalize.escalation(rows[0])
    assert record.external_id == str(esc["id"]) and record.is_closed and record.severity == "critical"
    assert make_client().escalation(esc["id"])["organizations"][0]["name"] == "A"


class Receiver(SimulatorServer):
    """Our side of a webhook, verifying like the provider; fails the first ``fail_first`` deliveries."""

    def __init__(self, secret: str, fail_first: int = 0):
        super().__init__()
        self.secret = secret
        self.fail_first = fail_first
        self.seen: list[tuple[str | None, bool | None]] = []
        self.route("POST", "/hook", self._hook)

    def _hook(self, request):
        verdict = webhooks.verify(request.raw, request.headers, self.secret)
        self.seen.append((webhooks.delivery_id(request.headers), verdict))
        if not verdict:
            return Reply(401, {"detail": "bad signature"})
        if len(self.seen) <= self.fail_first:
            return Reply(503, {"detail": "try later"})
        return Reply(202, {"status": "accepted"})


@pytest.mark.parametrize("prefix", ["svix", "webhook"])
def test_webhook_retries_keep_the_message_id(sim, prefix):
    secret = new_signing_secret()
    org = sim.add_org("Harbor Dental Group")
    report = sim.add_incident(org["id"])
    with Receiver(secret, fail_first=2) as receiver:
        sender = WebhookSender(receiver.url + "/hook", secret, header_prefix=prefix, extra_signatures=1)
        delivery = sender.send(sim.incident_webhook(report["id"], nulls=("summary", "status")))
    assert delivery.delivered and [s for s, _ in delivery.attempts] == [503, 503, 202]
    assert {msg for msg, _ in receiver.seen} == {delivery.msg_id}
    assert all(verdict is True for _, verdict in receiver.seen)
    signatures = {headers[f"{prefix}-signature"] for _, headers in delivery.attempts}
    assert len(signatures) == 3  # signed afresh on every attempt


def test_webhook_with_the_wrong_secret_is_refused_every_time(sim):
    org = sim.add_org("A")
    report = sim.add_incident(org["id"])
    with Receiver(new_signing_secret()) as receiver:
        delivery = WebhookSender(receiver.url + "/hook", new_signing_secret(), delays=(0, 0.01)).send(
            sim.incident_webhook(report["id"]))
    assert not delivery.delivered and [v for _, v in receiver.seen] == [False, False]
