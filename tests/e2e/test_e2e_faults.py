"""Faults against real processes (gunicorn + Celery workers + PostgreSQL + Redis), issue 13.

The stack talks to Redis and PostgreSQL through loopback proxies this module owns (tests/e2e/faults.py):
cutting a proxy is an outage or a restart as the product sees it, while the shared servers (and other
engineers' databases) are never touched. Mail goes to an SMTP sink we can switch off; resets go to the
Level simulator, which answers 500, 429 or slowly when told. ``celery beat`` is replaced by a thread that
sends the two sweepers on their schedule (faults.Beat). Every test records what was sent and what arrived
(``FIGURES``, printed at the end of the module and written to test-artifacts/e2e/faults.json).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from tests.simulators.level import LevelSimulator, WebhookSender

from .faults import Beat, SmtpSink, TcpProxy, wait_for
from .flows import all_pages, closed_status, create_client, ok
from .harness import ARTIFACTS, LiveStack, flush_redis, wait_database_quiet

pytestmark = pytest.mark.e2e

FIGURES: list[dict] = []
SWEEPERS = [("alerts.sweep_inbound_events", "intake"), ("outbox.sweep", "notifications")]


def _via(url: str, port: int) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host))


@pytest.fixture(scope="module")
def rig(live_db_url, live_redis_url):
    redis_port = urlsplit(live_redis_url).port or 6379
    db_port = urlsplit(live_db_url).port or 5432
    redis_proxy, db_proxy, smtp = TcpProxy(redis_port), TcpProxy(db_port), SmtpSink()
    for listener in (redis_proxy, db_proxy, smtp):
        listener.open()
    redis_url, db_url = _via(live_redis_url, redis_proxy.port), _via(live_db_url, db_proxy.port)
    flush_redis(live_redis_url)
    stack = LiveStack(db_url, redis_url, label=f"faults-{os.getpid()}", worker_concurrency=2, extra_env={
        "DJANGO_SETTINGS_MODULE": "tests.e2e.fault_settings",
        "EMAIL_HOST": "127.0.0.1", "EMAIL_PORT": str(smtp.port),
        "PSA_OUTBOX_RETRY_BASE_SECONDS": "1", "PSA_OUTBOX_RETRY_MAX_SECONDS": "3", "PSA_OUTBOX_GIVE_UP_SECONDS": "600",
        "PSA_OUTBOX_LEASE_SECONDS": "8", "PSA_STORM_NEW_CONDITIONS_PER_MINUTE": "0",
        "PSA_HTTP_TIMEOUT": "2", "PSA_HTTP_RETRIES": "1",
        # Production's inbound lease (the heartbeat keeps a live worker's claim): the kill test measures it.
        "PSA_E2E_LEASE_SECONDS": "15", "PSA_E2E_SWEEP_AFTER_SECONDS": "5",
    })
    stack.redis_proxy, stack.db_proxy, stack.smtp = redis_proxy, db_proxy, smtp
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()
        for listener in (redis_proxy, db_proxy, smtp):
            listener.close()
        (ARTIFACTS / "faults.json").write_text(json.dumps(FIGURES, indent=2))
        print("\nFault figures:\n" + "\n".join(json.dumps(f) for f in FIGURES))


def _restore_proxies(rig) -> None:
    for proxy in (rig.redis_proxy, rig.db_proxy, rig.smtp):
        if not proxy.up:
            proxy.restore()


@pytest.fixture
def stack(rig, transactional_db):
    _restore_proxies(rig)
    if rig.worker is None or not rig.worker.alive:
        rig.start_worker()
    yield rig
    # Torn down before transactional_db flushes the database: let the worker finish first.
    _restore_proxies(rig)
    wait_database_quiet()


@pytest.fixture
def level():
    with LevelSimulator() as sim:
        top = sim.build_tree(clients=1, depth=1, fanout=1)[0]
        sim.top = top
        sim.pcs = [sim.add_device(top, f"PC-{i:03d}") for i in range(40)]
        yield sim


class Msp:
    """A tenant with Level connected (its top group mapped to a client) and a rule that notifies the admin in
    the app and by email."""

    def __init__(self, stack: LiveStack, sim: LevelSimulator):
        n = uuid.uuid4().hex[:8]
        created = stack.create_tenant(f"Faults {n}", f"admin-{n}@faults.example")
        self.user_id = created["user_id"]
        self.api = stack.api(created["api_token"])
        self.sim = sim
        client = create_client(self.api, "Harbor Dental")
        ok(self.api.put("integrations/level/", json={"base_url": sim.url + "/v2",
                                                      "credentials": {"api_key": sim.read_write_key}}))
        job = ok(self.api.post("integrations/level/organizations/sync/"), 202)
        wait_for(lambda: ok(self.api.get(f"jobs/{job['id']}/"))["state"] == "succeeded", 45, what="org sync")
        org = next(o for o in all_pages(self.api, "integrations/level/organizations/") if o["name"] == sim.top["name"])
        ok(self.api.patch(f"integrations/level/organizations/{org['id']}/", json={"client": client["id"]}))
        ok(self.api.post("alert-rules/", json={"name": "Tell the admin", "notify_users": [self.user_id],
                                               "notify_email": True, "occurrence_note_minutes": 5}), 201)
        card = ok(self.api.get("integrations/level/webhook/"))
        self.url = card["url"]
        self.http = httpx.Client(timeout=10)
        self.sender = WebhookSender(secret=card["secret"], attempts=1,
                                    post=lambda u, b, h: self._post(u, b, h))
        self.answers: list[int] = []

    def _post(self, url, body, headers) -> int:
        try:
            return self.http.post(url, content=body, headers=headers).status_code
        except httpx.TransportError:
            return 0

    def fire(self, device, name: str) -> tuple[str, int]:
        alert = self.sim.add_alert(device, name, severity="critical")
        (code,) = self.sender.deliver(self.url, self.sim.alert_event(alert["id"]))
        self.answers.append(code)
        return alert["id"], code

    def events(self) -> list[dict]:
        return list(all_pages(self.api, "integrations/level/events/"))

    def tickets(self) -> list[dict]:
        return list(all_pages(self.api, "tickets/", {"source": "alert"}))

    def effects(self, **filters) -> list[dict]:
        return list(all_pages(self.api, "side-effects/", filters))

    def close(self, ticket_id: int) -> None:
        ok(self.api.patch(f"tickets/{ticket_id}/", json={"status": closed_status(self.api)["id"]}))


def _alert_ticket(msp: Msp, external_id: str) -> int:
    def found():
        rows = list(all_pages(msp.api, "alerts/", {"provider": "level"}))
        return next((a["ticket"] for a in rows if a["external_id"] == external_id and a["ticket"]), None)

    return wait_for(found, 45, what=f"the ticket of {external_id}")


def _settled(msp: Msp, n_events: int) -> list[dict]:
    seen: dict = {}

    def check():
        evs = msp.events()
        seen["statuses"] = sorted((e["status"], e["error"][:80]) for e in evs if e["status"] != "processed")
        seen["count"] = len(evs)
        return evs if len(evs) >= n_events and not [e for e in evs if e["status"] == "accepted"] else None

    try:
        return wait_for(check, 60, 0.5, f"{n_events} events processed")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; events {seen}; answers {msp.answers}") from None


def _effects_done(msp: Msp, expected: int) -> list[dict]:
    def check():
        rows = msp.effects()
        return rows if len(rows) >= expected and all(r["state"] != "pending" for r in rows) else None

    return wait_for(check, 60, 0.5, f"{expected} side effects settled")


# -- Redis down for 30 s during a burst -----------------------------------------------------------------------


def test_redis_down_30s_during_a_burst_loses_and_doubles_nothing(stack, level):
    msp = Msp(stack, level)
    outage = float(os.environ.get("PSA_FAULT_REDIS_SECONDS", "30"))
    with Beat(stack.redis_url, SWEEPERS, every=2):
        # Before: three tickets, to be closed (their resets) while Redis is down.
        before = [msp.fire(level.pcs[i], "Disk space low")[0] for i in range(3)]
        to_close = [_alert_ticket(msp, a) for a in before]
        burst_sent = 0
        stack.redis_proxy.cut()
        cut_at = time.monotonic()
        for t in to_close:
            msp.close(t)  # the close commits its reset side effects; their publish meets the outage
        i = 3
        while time.monotonic() - cut_at < outage:
            msp.fire(level.pcs[i % 40], "CPU high" if i < 40 else "Memory high")
            burst_sent += 1
            i += 1
            time.sleep(0.4)
        stack.redis_proxy.restore()
        restored_at = time.monotonic()
        sent = 3 + burst_sent
        events = _settled(msp, sent)
        processed_after = time.monotonic() - restored_at
        tickets = msp.tickets()
        effects = _effects_done(msp, len(tickets) * 2 + len(to_close))
    statuses = {e["status"] for e in events}
    assert msp.answers.count(202) == sent and statuses == {"processed"}, (msp.answers, statuses)
    alerts = list(all_pages(msp.api, "alerts/", {"provider": "level"}))
    assert len(alerts) == sent  # every firing stored and processed once
    assert sum(t["occurrence_count"] for t in tickets) == sent  # counted once each
    by_kind: dict[str, list[dict]] = {}
    for e in effects:
        by_kind.setdefault(e["kind"], []).append(e)
    assert {e["state"] for e in effects} == {"done"}, [e for e in effects if e["state"] != "done"]
    assert len(by_kind["notify.in_app"]) == len(by_kind["notify.email"]) == len(tickets)
    assert len(by_kind["alert.reset"]) == len(to_close)
    mail_ids = stack.smtp.message_ids()
    ours = {e["id"]: sum(n for k, n in mail_ids.items() if k and k.startswith(f"<psa-side-effect-{e['id']}@"))
            for e in by_kind["notify.email"]}
    assert set(ours.values()) == {1}, ours  # every email arrived, none twice
    resolves = {a: len(level.calls_to("POST", f"/v2/alerts/{a}/resolve")) for a in before}
    assert resolves == dict.fromkeys(before, 1), resolves
    FIGURES.append({"fault": f"Redis down {outage:.0f} s during a burst", "webhooks_sent": sent,
                    "answered_202": msp.answers.count(202), "events_processed": len(events), "alerts": len(alerts),
                    "tickets": len(tickets), "occurrences_counted": sum(t["occurrence_count"] for t in tickets),
                    "in_app_done": len(by_kind["notify.in_app"]), "emails_received": sum(ours.values()),
                    "emails_twice": sum(1 for v in ours.values() if v > 1),
                    "resets_queued_during_outage": len(to_close), "reset_calls": sum(resolves.values()),
                    "all_processed_s_after_restore": round(processed_after, 1)})


# -- PostgreSQL restarted during intake -----------------------------------------------------------------------


def test_postgres_restart_during_intake_answers_503_never_a_202_without_a_row(stack, level):
    msp = Msp(stack, level)
    answers: list[tuple[str, int]] = []
    with Beat(stack.redis_url, SWEEPERS, every=2):
        down_for = 6.0
        start = time.monotonic()
        cut = restored = False
        i = 0
        while time.monotonic() - start < down_for + 8:
            elapsed = time.monotonic() - start
            if not cut and elapsed > 2:
                stack.db_proxy.cut()  # every connection dropped, new ones refused: a restart in progress
                cut = True
            if cut and not restored and elapsed > 2 + down_for:
                stack.db_proxy.restore()
                restored = True
            answers.append(msp.fire(level.pcs[i % 40], f"Check {i}"))
            i += 1
            time.sleep(0.2)
        codes = [c for _, c in answers]
        # The sender retries what was refused (as RMMs do): each is stored once.
        refused = [a for a, c in answers if c != 202]
        for alert_id in refused:
            msp.sender.deliver(msp.url, level.alert_event(alert_id), attempts=5)
        accepted = {a for a, c in answers if c == 202}
        events = _settled(msp, len(answers))
    assert 503 in codes and codes.count(202) + codes.count(503) == len(codes), codes
    assert codes[-1] == 202  # recovered by itself
    alerts = {a["external_id"] for a in all_pages(msp.api, "alerts/", {"provider": "level"})}
    assert accepted <= alerts  # never a 202 without a stored row
    assert alerts == {a for a, _ in answers}  # the refused ones arrived on retry, once each
    assert len([e for e in events if e["status"] == "processed"]) == len(answers)
    FIGURES.append({"fault": f"PostgreSQL cut {down_for:.0f} s during intake", "webhooks_sent": len(answers),
                    "answered_202": codes.count(202), "answered_503": codes.count(503),
                    "other_answers": len(codes) - codes.count(202) - codes.count(503),
                    "202_without_row": len(accepted - alerts), "retried_after_503": len(refused),
                    "alerts_stored": len(alerts),
                    "events_processed": len([e for e in events if e["status"] == "processed"])})


# -- SMTP down --------------------------------------------------------------------------------------------


def test_smtp_down_is_retried_then_delivered_once(stack, level):
    msp = Msp(stack, level)
    with Beat(stack.redis_url, SWEEPERS, every=2):
        stack.smtp.down()
        fired = [msp.fire(level.pcs[i], "Backup failed")[0] for i in range(3)]
        for a in fired:
            _alert_ticket(msp, a)
        pending = wait_for(lambda: (rows := msp.effects(kind="notify.email")) and len(rows) == 3
                           and all(r["attempts"] >= 2 and r["state"] == "pending" for r in rows) and rows,
                           30, 0.5, "emails retried while the mail server is down")
        assert all("refused" in r["last_error"].lower() or "errno" in r["last_error"].lower() for r in pending), pending
        before = len(stack.smtp.messages)
        stack.smtp.restore()
        done = wait_for(lambda: (rows := msp.effects(kind="notify.email")) and all(r["state"] == "done" for r in rows)
                        and rows, 30, 0.5, "emails delivered")
    ids = {f"<psa-side-effect-{r['id']}@" for r in done}
    got = [m["Message-ID"] for m in stack.smtp.messages[before:] if any(m["Message-ID"].startswith(p) for p in ids)]
    assert len(got) == 3 and len(set(got)) == 3
    FIGURES.append({"fault": "SMTP down, then back", "emails_caused": 3,
                    "attempts_while_down": sum(r["attempts"] for r in pending), "emails_received": len(got),
                    "emails_twice": len(got) - len(set(got))})


def test_a_worker_killed_between_the_mail_servers_answer_and_the_mark_sends_no_second_email(stack, level):
    """The SMTP sink kills the whole worker (SIGKILL) the moment it has the message, before answering: the
    mail is out, the row was never marked done. After the claim's lease a new worker finds the row in doubt
    and fails it as "may have gone out" instead of sending it again."""
    msp = Msp(stack, level)
    killed: list[str] = []

    def kill_sender(message):
        if not killed:
            killed.append(message["Message-ID"])
            stack.kill_worker()

    stack.smtp.on_message = kill_sender
    try:
        with Beat(stack.redis_url, SWEEPERS, every=2):
            alert_id = msp.fire(level.pcs[0], "RAID degraded")[0]
            wait_for(lambda: killed, 30, what="the worker to send the email")
            stack.smtp.on_message = None
            stack.start_worker()
            ticket_id = _alert_ticket(msp, alert_id)
            (email_row,) = wait_for(
                lambda: (r := msp.effects(ticket=ticket_id, kind="notify.email")) and r[0]["state"] != "pending" and r,
                40, 0.5, "the in-doubt email to be settled")
    finally:
        stack.smtp.on_message = None
    received = [m for m in stack.smtp.messages if m["Message-ID"] == killed[0]]
    assert email_row["state"] == "failed" and "may have gone out" in email_row["last_error"], email_row
    assert killed[0].startswith(f"<psa-side-effect-{email_row['id']}@") and len(received) == 1
    in_app = msp.effects(ticket=ticket_id, kind="notify.in_app")
    assert [r["state"] for r in in_app] == ["done"]
    FIGURES.append({"fault": "worker SIGKILLed inside the SMTP exchange (after the server had the mail)",
                    "emails_caused": 1, "emails_received": len(received), "row_state": email_row["state"],
                    "resent_automatically": 0, "in_app_done": len(in_app)})


# -- the provider answers 500, 429 and slowly to resets ------------------------------------------------------


def test_provider_500_429_and_timeouts_on_reset_are_retried_then_done_or_failed_visibly(stack, level):
    msp = Msp(stack, level)
    with Beat(stack.redis_url, SWEEPERS, every=2):
        a500, a429, slow, dead = (msp.fire(level.pcs[i], "Service stopped")[0] for i in range(4))
        tickets = {a: _alert_ticket(msp, a) for a in (a500, a429, slow, dead)}
        # 500 three times, 429 with Retry-After twice, a 5 s answer (timeout 2 s) twice; then all well.
        level.fail_next(3, 500)
        msp.close(tickets[a500])
        wait_for(lambda: (r := msp.effects(ticket=tickets[a500], kind="alert.reset")) and r[0]["state"] == "done", 45, 0.5, "500 -> done")
        level.rate_limit(2, retry_after="2")
        msp.close(tickets[a429])
        wait_for(lambda: (r := msp.effects(ticket=tickets[a429], kind="alert.reset")) and r[0]["state"] == "done", 45, 0.5, "429 -> done")
        level.delay = 5.0
        msp.close(tickets[slow])
        wait_for(lambda: (r := msp.effects(ticket=tickets[slow], kind="alert.reset")) and r[0]["attempts"] >= 2, 45, 0.5, "timeouts")
        level.delay = 0.0
        wait_for(lambda: (r := msp.effects(ticket=tickets[slow], kind="alert.reset")) and r[0]["state"] == "done", 45, 0.5,
                 "timeout -> done")
        # Down for good (longer than the time bound): failed visibly, then a person retries it.
        level.fail_next(10_000, 500)
        msp.close(tickets[dead])
        (effect,) = wait_for(lambda: (r := msp.effects(ticket=tickets[dead], kind="alert.reset")) and r[0]["attempts"] >= 2 and r,
                             45, 0.5, "retries of the dead provider")
        assert effect["state"] == "pending" and "server error (500)" in effect["last_error"]
    rows = {a: msp.effects(ticket=tickets[a], kind="alert.reset")[0] for a in (a500, a429, slow)}
    calls = {a: len(level.calls_to("POST", f"/v2/alerts/{a}/resolve")) for a in (a500, a429, slow)}
    answered = {a: sum(1 for c in level.calls_to("POST", f"/v2/alerts/{a}/resolve") if 200 <= c.status < 300)
                for a in (a500, a429, slow)}
    assert all(level.alerts[a]["is_resolved"] for a in (a500, a429, slow))
    # Refused calls changed nothing in the provider: one resolve went through for each. A call we gave up on
    # (timeout) may still have been carried out by the provider: the retry is then a harmless repeat.
    assert answered[a500] == answered[a429] == 1 and answered[slow] >= 1, answered
    ticket_page_notes = [n["body"] for n in all_pages(msp.api, f"tickets/{tickets[a429]}/notes/")]
    assert sum("Reset level alert" in b for b in ticket_page_notes) == 1
    FIGURES.append({"fault": "provider 500 x3 / 429 x2 (Retry-After 2) / 5 s answers (timeout 2 s) on reset",
                    "resets_caused": 3, "attempts": {k: rows[a]["attempts"] for k, a in
                                                     (("500", a500), ("429", a429), ("timeout", slow))},
                    "resolve_calls_seen_by_provider": dict(zip(("500", "429", "timeout"), calls.values(), strict=True)),
                    "resolve_calls_answered_2xx": dict(zip(("500", "429", "timeout"), answered.values(), strict=True)),
                    "resets_done": sum(r["state"] == "done" for r in rows.values()),
                    "reset_notes_on_429_ticket": 1,
                    "still_failing_provider": {"state_while_retrying": effect["state"], "attempts": effect["attempts"]}})
    level._fail.clear()
    # The provider answers again: its pending retry goes through before the test ends. A retry still
    # writing while the database is flushed for the next test can deadlock the flush's TRUNCATE.
    wait_for(lambda: msp.effects(ticket=tickets[dead], kind="alert.reset")[0]["state"] == "done", 45, 0.5,
             "the dead provider's reset, once it answers")


def test_a_reset_that_never_succeeds_fails_visibly_and_a_person_retries_it(stack, level):
    """The time bound, shortened for this ticket by the API's view of it: give_up_at passes, the row fails,
    the integration card counts it, the retry delivers it."""
    msp = Msp(stack, level)
    with Beat(stack.redis_url, SWEEPERS, every=2):
        alert_id = msp.fire(level.pcs[0], "Agent offline")[0]
        ticket_id = _alert_ticket(msp, alert_id)
        level.fail_next(10_000, 500)
        msp.close(ticket_id)
        wait_for(lambda: (r := msp.effects(ticket=ticket_id, kind="alert.reset")) and r[0]["attempts"] >= 1, 30, 0.5, "first attempt")
        # Shorten the budget as an operator's lower PSA_OUTBOX_GIVE_UP_SECONDS would (no other way in from outside).
        from outbox.models import SideEffect

        SideEffect.objects.unscoped().filter(ticket_id=ticket_id).update(give_up_at=_now())
        (failed,) = wait_for(lambda: (r := msp.effects(ticket=ticket_id, kind="alert.reset")) and r[0]["state"] == "failed" and r,
                             30, 0.5, "the give-up")
        assert failed["last_error"].startswith("Gave up after") and failed["done_at"]
        health = ok(msp.api.get("integrations/level/health/"))
        assert health["failed_side_effects"] == 1
        level._fail.clear()
        ok(msp.api.post(f"side-effects/{failed['id']}/retry/"))
        wait_for(lambda: msp.effects(ticket=ticket_id, kind="alert.reset")[0]["state"] == "done", 30, 0.5, "the retried reset")
    assert ok(msp.api.get("integrations/level/health/"))["failed_side_effects"] == 0
    assert len(level.calls_to("POST", f"/v2/alerts/{alert_id}/resolve")) >= 2 and level.alerts[alert_id]["is_resolved"]
    FIGURES.append({"fault": "provider down past the time bound, then a person's retry", "resets_caused": 1,
                    "state_after_bound": "failed", "card_failed_count": 1, "after_retry": "done"})


def _now():
    from django.utils import timezone

    return timezone.now()


# -- a worker killed mid-burst -------------------------------------------------------------------------------


def test_a_killed_workers_events_are_processed_by_another_within_30s_once(stack, level):
    msp = Msp(stack, level)
    other = stack._worker_proc()  # a second worker, as a deployment has
    other.start()
    try:
        wait_for(lambda: " ready." in other.log_text(), 60, what="the second worker")
        with Beat(stack.redis_url, [SWEEPERS[0]], every=5):  # production's sweeper cadence
            level.delay = 0.0
            sent = []
            for i in range(120):
                sent.append(msp.fire(level.pcs[i % 40], "Burst")[0])  # 40 conditions, 3 firings each
                if i == 80:
                    stack.kill_worker()  # SIGKILL the whole first worker mid-burst
                    killed_at = time.monotonic()
            events = _settled(msp, len(sent))
            recovered = time.monotonic() - killed_at
    finally:
        other.stop()
    assert {e["status"] for e in events} == {"processed"} and len(events) == len(sent)
    alerts = list(all_pages(msp.api, "alerts/", {"provider": "level"}))
    assert len(alerts) == len(sent)
    assert sum(t["occurrence_count"] for t in msp.tickets()) == len(sent)  # none counted twice
    assert recovered < 30, recovered
    FIGURES.append({"fault": "worker SIGKILLed after 81 of 120 webhooks", "webhooks_sent": len(sent),
                    "events_processed": len(events), "alerts": len(alerts),
                    "occurrences_counted": sum(t["occurrence_count"] for t in msp.tickets()),
                    "all_processed_s_after_kill": round(recovered, 1)})
