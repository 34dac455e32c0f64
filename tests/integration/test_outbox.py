"""The outbox (outbox.services): side effects written with their cause, retried with backoff and jitter,
Retry-After honoured, given up visibly, swept after a broker outage, retried by a person (API and page),
once per cause; an email is never sent twice after a crash between the send and the mark."""

from __future__ import annotations

import datetime as dt
from unittest import mock

import pytest
from django.core import mail
from django.utils import timezone

from alerts.models import Alert, AlertRule
from alerts.services.pipeline import ingest_normalized
from integrations.errors import AuthFailed, NotResettable, RateLimited, Unavailable
from outbox import services
from outbox.models import SideEffect
from psa.models import Notification
from psa.tenancy import tenant_context
from tests.fakes import alert as fake_alert
from tests.helpers import committed, ok
from tests.integration.pipeline_support import setup_fake
from tickets.models import Status, TicketNote

pytestmark = pytest.mark.django_db


@pytest.fixture
def fx(tenant_a, fake_provider):
    return setup_fake(tenant_a.tenant)


def ingest(fx, na):
    with committed():
        return ingest_normalized(fx.integration, na, source="webhook")


def close(fx, api, ticket_id):
    with tenant_context(fx.tenant):
        closed = Status.objects.get(name="Closed")
    with committed():
        ok(api.patch(f"/api/v1/tickets/{ticket_id}/", {"status": closed.pk}, format="json"))


def effects(fx, **filters):
    with tenant_context(fx.tenant):
        return list(SideEffect.objects.filter(**filters).order_by("id"))


def later(seconds: float):
    """The clock moved on (what the sweeper sees later)."""
    return mock.patch("django.utils.timezone.now", return_value=timezone.now() + dt.timedelta(seconds=seconds))


def reset_notes(fx, ticket_id) -> list[str]:
    with tenant_context(fx.tenant):
        return [b for b in TicketNote.objects.filter(ticket_id=ticket_id).values_list("body", flat=True)
                if "reset" in b.lower()]


def test_backoff_is_exponential_with_jitter_and_honours_retry_after(settings):
    settings.PSA_OUTBOX_RETRY_BASE_SECONDS, settings.PSA_OUTBOX_RETRY_MAX_SECONDS = 10, 600
    for attempts, ceiling in [(1, 10), (2, 20), (3, 40), (7, 600), (20, 600)]:
        delays = {services.backoff(attempts).total_seconds() for _ in range(50)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays), (attempts, delays)
        assert len(delays) > 1  # jittered: concurrent failures do not retry in lockstep
    assert services.backoff(1, retry_after=90).total_seconds() >= 90


def test_the_reset_is_written_with_the_close_and_retried_until_it_succeeds(fx, fake_provider, api_a):
    fake_provider.state.reset_failures = {"a-1": Unavailable("RMM is down")}
    a = ingest(fx, fake_alert("a-1", "o1"))
    close(fx, api_a, a.ticket_id)
    (effect,) = effects(fx, kind="alert.reset")
    assert (effect.state, effect.attempts, effect.last_error) == ("pending", 1, "RMM is down")
    assert effect.ticket_id == a.ticket_id and effect.alert_id == a.pk and effect.integration_id == fx.integration.pk
    assert 5 <= (effect.next_attempt_at - timezone.now()).total_seconds() <= 10  # first backoff: 5-10 s
    with tenant_context(fx.tenant):
        a.refresh_from_db()
    assert (a.reset_status, a.reset_error) == ("pending", "RMM is down")
    assert reset_notes(fx, a.ticket_id) == []  # no note per attempt
    # The sweeper before it is due publishes nothing; after, it delivers (the RMM is back).
    assert services.sweep()["due"] == 0
    fake_provider.state.reset_failures = {}
    with later(11), committed():
        assert services.sweep() == {"due": 1, "published": 1}
    (effect,) = effects(fx, kind="alert.reset")
    assert (effect.state, effect.attempts, effect.last_error) == ("done", 2, "")
    assert fake_provider.state.resets == ["a-1", "a-1"]
    with tenant_context(fx.tenant):
        a.refresh_from_db()
    assert (a.reset_status, a.state) == ("done", "resolved")
    assert reset_notes(fx, a.ticket_id) == ["Reset fake alert a-1 after the ticket was closed."]
    # A delivery message arriving again (a broker redelivery) changes nothing.
    assert services.run_for_tenant(fx.tenant.pk, effect.pk) is None
    assert fake_provider.state.resets == ["a-1", "a-1"]


def test_retry_after_is_honoured(fx, fake_provider, api_a):
    fake_provider.state.reset_failures = {"a-1": RateLimited("slow down", retry_after=120)}
    a = ingest(fx, fake_alert("a-1", "o1"))
    close(fx, api_a, a.ticket_id)
    (effect,) = effects(fx)
    assert effect.state == "pending" and (effect.next_attempt_at - timezone.now()).total_seconds() >= 118
    with later(60):
        assert services.sweep()["due"] == 0


def test_gives_up_after_the_time_bound_and_a_person_retries_from_the_api(fx, fake_provider, api_a, settings):
    fake_provider.state.reset_failures = {"a-1": Unavailable("RMM is down")}
    a = ingest(fx, fake_alert("a-1", "o1"))
    close(fx, api_a, a.ticket_id)
    settings.PSA_OUTBOX_GIVE_UP_SECONDS = 60
    with later(7 * 3600), committed():  # past give_up_at (created + 6 h when it was written)
        services.sweep()
    (effect,) = effects(fx)
    assert effect.state == "failed" and effect.done_at is not None
    assert effect.last_error.startswith("Gave up after 2 attempts over") and effect.last_error.endswith("RMM is down")
    notes = reset_notes(fx, a.ticket_id)
    assert len(notes) == 1 and notes[0].startswith("Could not reset fake alert a-1: Gave up after 2 attempts")
    listed = ok(api_a.get("/api/v1/side-effects/", {"state": "failed", "ticket": a.ticket_id}))
    assert [r["id"] for r in listed["results"]] == [effect.pk]
    assert set(listed["results"][0]) >= {"id", "kind", "state", "attempts", "last_error", "ticket", "alert",
                                         "created_at", "done_at"}
    assert ok(api_a.get("/api/v1/side-effects/", {"state": "done"}))["count"] == 0
    assert ok(api_a.get("/api/v1/side-effects/", {"kind": "notify.email"}))["count"] == 0
    # The provider is back: a person retries.
    fake_provider.state.reset_failures = {}
    with committed():
        body = ok(api_a.post(f"/api/v1/side-effects/{effect.pk}/retry/"))
    assert body["state"] == "pending"
    (effect,) = effects(fx)
    assert effect.state == "done" and fake_provider.state.resets.count("a-1") == 3
    assert ok(api_a.post(f"/api/v1/side-effects/{effect.pk}/retry/"), 409)["detail"].startswith("This side effect is done")


def test_a_credential_problem_fails_at_once_and_a_decline_is_skipped(fx, fake_provider, api_a):
    fake_provider.state.reset_failures = {"a-1": AuthFailed("The API key was rejected."),
                                          "a-2": NotResettable("This alert is a condition, not an event.")}
    a1 = ingest(fx, fake_alert("a-1", "o1", condition_key="c1"))
    a2 = ingest(fx, fake_alert("a-2", "o1", condition_key="c2"))
    close(fx, api_a, a1.ticket_id)
    close(fx, api_a, a2.ticket_id)
    failed, skipped = effects(fx)
    assert (failed.state, failed.attempts, failed.last_error) == ("failed", 1, "The API key was rejected.")
    assert (skipped.state, skipped.last_error) == ("skipped", "This alert is a condition, not an event.")
    with tenant_context(fx.tenant):
        assert dict(Alert.objects.values_list("external_id", "reset_status")) == {"a-1": "failed", "a-2": "skipped"}


def test_a_broker_outage_loses_nothing(fx, fake_provider, api_a):
    from outbox.tasks import deliver

    a = ingest(fx, fake_alert("a-1", "o1"))
    with mock.patch.object(deliver, "apply_async", side_effect=OSError("broker down")):
        close(fx, api_a, a.ticket_id)
    (effect,) = effects(fx)
    assert effect.state == "pending" and fake_provider.state.resets == []
    with committed():
        assert services.sweep()["published"] == 1
    assert effects(fx)[0].state == "done" and fake_provider.state.resets == ["a-1"]


def test_the_ticket_page_shows_the_reset_and_retries_it(fx, fake_provider, api_a, tenant_a, settings):
    from django.test import Client as HttpClient

    settings.PSA_OUTBOX_GIVE_UP_SECONDS = 0
    fake_provider.state.reset_failures = {"a-1": Unavailable("RMM is down")}
    a = ingest(fx, fake_alert("a-1", "o1"))
    close(fx, api_a, a.ticket_id)
    web = HttpClient()
    web.force_login(tenant_a.user)
    page = web.get(f"/tickets/{a.ticket_id}/").content.decode()
    assert "Reset in Fake RMM:" in page and 'data-state="failed"' in page and "RMM is down" in page
    assert 'data-testid="side-effect-retry"' in page
    (effect,) = effects(fx)
    fake_provider.state.reset_failures = {}
    settings.PSA_OUTBOX_GIVE_UP_SECONDS = 3600
    with committed():
        r = web.post(f"/side-effects/{effect.pk}/retry/", {"next": f"/tickets/{a.ticket_id}/"})
    assert r.status_code == 302 and r["Location"] == f"/tickets/{a.ticket_id}/"
    page = web.get(f"/tickets/{a.ticket_id}/").content.decode()
    assert 'data-state="done"' in page and 'data-testid="side-effect-retry"' not in page
    failed_list = web.get("/side-effects/?state=failed&provider=fake").content.decode()
    assert "Nothing here." in failed_list


def _notifying_rule(fx, user, email=True):
    with tenant_context(fx.tenant):
        rule = AlertRule.objects.create(name="Tell the tech", position=1, notify_email=email)
        rule.notify_users.set([user])
    return rule


def test_notifications_are_side_effects_delivered_once(fx, make_member):
    tech = make_member(fx.tenant, email="tech@alpha.example")
    _notifying_rule(fx, tech)
    a = ingest(fx, fake_alert("a-1", "o1"))
    in_app, email = effects(fx)
    assert (in_app.kind, email.kind) == ("notify.in_app", "notify.email")
    assert in_app.state == email.state == "done" and email.label == "Email to tech@alpha.example"
    with tenant_context(fx.tenant):
        assert Notification.objects.filter(user=tech, url=f"/tickets/{a.ticket_id}/").count() == 1
    assert len(mail.outbox) == 1 and mail.outbox[0].extra_headers["Message-ID"].startswith("<psa-side-effect-")
    # Delivered again (a redelivered message, a sweeper race): nothing more.
    assert services.run_for_tenant(fx.tenant.pk, in_app.pk) is None
    assert services.run_for_tenant(fx.tenant.pk, email.pk) is None
    with tenant_context(fx.tenant):
        assert Notification.objects.filter(user=tech).count() == 1
    assert len(mail.outbox) == 1


def test_smtp_down_is_retried_then_sent_once(fx, make_member):
    tech = make_member(fx.tenant, email="tech@alpha.example")
    _notifying_rule(fx, tech)
    with mock.patch("django.core.mail.backends.locmem.EmailBackend.send_messages",
                    side_effect=ConnectionRefusedError(111, "Connection refused")):
        ingest(fx, fake_alert("a-1", "o1"))
    (email,) = effects(fx, kind="notify.email")
    assert email.state == "pending" and "Connection refused" in email.last_error and email.in_doubt_since is None
    assert mail.outbox == []
    with later(11), committed():
        services.sweep()
    assert effects(fx, kind="notify.email")[0].state == "done" and len(mail.outbox) == 1


def test_an_email_is_not_sent_twice_after_a_crash_between_send_and_mark(fx, make_member):
    """The worker dies after the mail server took the message and before the row says done."""
    tech = make_member(fx.tenant, email="tech@alpha.example")
    _notifying_rule(fx, tech)

    class WorkerKilled(BaseException):  # what SIGKILL looks like from here: nothing after it runs
        pass

    real_finish = services._finish

    def die_on_done(effect, fence, state, detail, **changes):
        if effect.kind == "notify.email" and state == "done":
            raise WorkerKilled
        return real_finish(effect, fence, state, detail, **changes)

    with mock.patch.object(services, "_finish", die_on_done), pytest.raises(WorkerKilled):
        ingest(fx, fake_alert("a-1", "o1"))
    assert len(mail.outbox) == 1
    (email,) = effects(fx, kind="notify.email")
    assert email.state == "pending" and email.in_doubt_since is not None
    # The sweeper finds it once the dead worker's lease is over: failed as "may have been sent", not resent.
    with later(services.lease().total_seconds() + 1), committed():
        assert services.sweep()["due"] == 1
    (email,) = effects(fx, kind="notify.email")
    assert email.state == "failed" and "may have gone out" in email.last_error
    assert len(mail.outbox) == 1
    # A person may send it again: same Message-ID, so the receiver's client drops a duplicate.
    with tenant_context(fx.tenant), committed():
        services.retry(email)
    assert len(mail.outbox) == 2 and mail.outbox[0].extra_headers["Message-ID"] == mail.outbox[1].extra_headers[
        "Message-ID"]


def test_enqueue_is_once_per_cause(fx):
    a = ingest(fx, fake_alert("a-1", "o1"))
    with tenant_context(fx.tenant), mock.patch("outbox.services.publish"), committed():
        first = services.enqueue("alert.reset", "cause-1", alert_id=a.pk)
        again = services.enqueue("alert.reset", "cause-1", alert_id=a.pk)
    assert first is not None and again is None and len(effects(fx)) == 1


def test_health_counts_failed_side_effects(fx, fake_provider, api_a, settings):
    settings.PSA_OUTBOX_GIVE_UP_SECONDS = 0
    fake_provider.state.reset_failures = {"a-1": Unavailable("RMM is down")}
    a = ingest(fx, fake_alert("a-1", "o1"))
    close(fx, api_a, a.ticket_id)
    assert ok(api_a.get("/api/v1/integrations/fake/health/"))["failed_side_effects"] == 1
