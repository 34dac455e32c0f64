"""integrations/{provider}/health/, the RMM tab and panel health cards, and the quiet-provider alarm driven
by a Tactical simulator's webhook history (then silenced), and by a poll finding alerts no webhook announced."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core import mail
from django.utils import timezone

from alerts.models import Alert, InboundEvent
from integrations.models import Integration
from integrations.services.health import check_all_quiet
from psa.models import Notification, Role
from psa.tenancy import tenant_context
from tests.conftest import token_client
from tests.helpers import committed, ok
from tests.integration.pipeline_support import setup_fake, trigger
from tests.integration.test_tactical_flow import T, Tactical, connected, run_job, sim  # noqa: F401
from tests.outbox_support import failed_reset

pytestmark = pytest.mark.django_db

KEYS = {"last_webhook_at", "last_poll_at", "last_poll_ok", "last_poll_error", "token_expires_at",
        "webhook_failures_24h", "queue_lag_seconds", "failed_side_effects", "quiet", "quiet_reason"}


def test_health_figures(tenant_a, api_a, fake_provider, make_member):
    fx = setup_fake(tenant_a.tenant)
    fx.post(trigger("a-1"))
    fx.post(b"not json")
    old = fx.post(b"{broken").json()["event_id"]
    with tenant_context(fx.tenant):
        InboundEvent.objects.filter(pk=old).update(received_at=timezone.now() - dt.timedelta(hours=30))
        # Stored, never processed for five minutes: the queue lags.
        waiting = InboundEvent.objects.create(integration=fx.integration, provider="fake", delivery_id="w-1",
                                              body=b"{}", size=2)
        InboundEvent.objects.filter(pk=waiting.pk).update(received_at=timezone.now() - dt.timedelta(minutes=5))
        failed_reset(Alert.objects.get())
        integration = Integration.objects.get(pk=fx.integration.pk)
        expires = int(timezone.now().timestamp()) + 3600
        integration.set_token({"access_token": "t", "refresh_token": "r", "expires_at": expires})
        integration.save(update_fields=["token_ciphertext"])
    body = ok(api_a.get("/api/v1/integrations/fake/health/"))
    assert KEYS <= set(body)
    assert body["webhook_failures_24h"] == 1 and body["webhook_events_24h"] == 3  # the 30-hour-old one is out
    assert 290 <= body["queue_lag_seconds"] <= 400 and body["queue_backlog"] == 1
    assert body["failed_side_effects"] == 1
    assert dt.datetime.fromisoformat(body["token_expires_at"]).timestamp() == expires
    assert body["token_expired"] is False and body["last_webhook_at"] is not None
    assert body["quiet"] is False and body["quiet_reason"] == ""
    # Admins only; an unknown provider is 404; a provider never set up answers empty figures.
    tech = make_member(fx.tenant, Role.TECHNICIAN)
    assert token_client(tech.api_token).get("/api/v1/integrations/fake/health/").status_code == 403
    assert api_a.get("/api/v1/integrations/nope/health/").status_code == 404
    empty = ok(api_a.get("/api/v1/integrations/generic/health/"))
    assert empty["last_webhook_at"] is None and empty["webhook_failures_24h"] == 0 and empty["quiet"] is False


def test_health_cards_on_the_rmm_tab_and_panel(tenant_a, client, fake_provider):
    fx = setup_fake(tenant_a.tenant)
    fx.post(b"not json")
    client.login(username=tenant_a.user.email, password=tenant_a.password)
    tab = client.get("/settings/integrations/rmm/").content.decode()
    assert 'data-testid="webhook-failures">1 of 1<' in tab
    card = client.get("/settings/integrations/rmm/fake/health/").content.decode()
    assert 'data-testid="health-card"' in card and "1</span> of 1" in card


# -- the quiet-provider alarm, on Tactical's real webhooks --------------------------------------------------


def _spread_history(tenant, integration_id: int, newest_age: dt.timedelta, gap: dt.timedelta) -> None:
    """Give the stored webhooks the rhythm of a provider sending one every ``gap``."""
    now = timezone.now()
    with tenant_context(tenant):
        ids = list(InboundEvent.objects.filter(integration_id=integration_id, source="webhook")
                   .order_by("-received_at", "-id").values_list("pk", flat=True))
        for i, pk in enumerate(ids):
            InboundEvent.objects.filter(pk=pk).update(received_at=now - newest_age - i * gap)
        Integration.objects.filter(pk=integration_id).update(last_webhook_at=now - newest_age)


def _admin_notices(tenant_a):
    return list(Notification.objects.unscoped().filter(user=tenant_a.user).values_list("title", flat=True))


@pytest.mark.usefixtures("fast")
def test_quiet_alarm_learns_the_gap_warns_once_and_clears(api_a, tenant_a, client, connected, sim):  # noqa: F811
    tactical = Tactical(api_a, sim)
    for _ in range(12):
        alert = sim.add_alert(sim.front)
        assert tactical.send(alert["id"]).status_code == 202
    integration_id = Integration.objects.unscoped().get(tenant=tenant_a.tenant, provider="tactical").pk

    # A webhook every 10 minutes, the last one 20 minutes ago: within the learned gap (floor 30 minutes).
    _spread_history(tenant_a.tenant, integration_id, dt.timedelta(minutes=20), dt.timedelta(minutes=10))
    body = ok(api_a.get(f"{T}/health/"))
    assert body["quiet"] is False and body["usual_gap_seconds"] == pytest.approx(600, abs=1)
    assert check_all_quiet() == {"ok": 1}

    # Silence: nothing for more than two hours.
    _spread_history(tenant_a.tenant, integration_id, dt.timedelta(hours=2, minutes=20), dt.timedelta(minutes=10))
    body = ok(api_a.get(f"{T}/health/"))
    assert body["quiet"] is True and "No webhook for 2 hours" in body["quiet_reason"]
    assert "10 minutes" in body["quiet_reason"]
    assert check_all_quiet() == {"raised": 1}
    assert _admin_notices(tenant_a) == ["Tactical RMM has gone quiet"]
    assert check_all_quiet() == {"still_quiet": 1}  # not every minute
    assert len(_admin_notices(tenant_a)) == 1
    assert ok(api_a.get(f"{T}/health/"))["quiet_alarm_since"] is not None
    client.login(username=tenant_a.user.email, password=tenant_a.password)
    tab = client.get("/settings/integrations/rmm/").content.decode()
    assert 'data-testid="quiet-warning"' in tab and "No webhook for 2 hours" in tab

    # It speaks again: the alarm clears; a later silence raises (and notifies) again.
    alert = sim.add_alert(sim.front)
    assert tactical.send(alert["id"]).status_code == 202
    assert ok(api_a.get(f"{T}/health/"))["quiet"] is False
    assert check_all_quiet() == {"cleared": 1}
    _spread_history(tenant_a.tenant, integration_id, dt.timedelta(hours=3), dt.timedelta(minutes=10))
    assert check_all_quiet() == {"raised": 1}
    assert len(_admin_notices(tenant_a)) == 1  # the first notice is still unread: not a second copy
    assert check_all_quiet() == {"still_quiet": 1}
    Notification.objects.unscoped().filter(user=tenant_a.user).update(read_at=timezone.now())
    assert ok(api_a.get(f"{T}/health/"))["quiet"] is True
    alert = sim.add_alert(sim.front)
    assert tactical.send(alert["id"]).status_code == 202
    assert check_all_quiet() == {"cleared": 1}
    _spread_history(tenant_a.tenant, integration_id, dt.timedelta(hours=3), dt.timedelta(minutes=10))
    with committed():  # the email goes after the commit
        assert check_all_quiet() == {"raised": 1}
    assert len(_admin_notices(tenant_a)) == 2  # read, then quiet again: a new notice
    assert [m.subject for m in mail.outbox] == ["Tactical RMM has gone quiet"]


@pytest.mark.usefixtures("fast")
def test_a_poll_finding_alerts_no_webhook_announced_is_quiet_too(api_a, tenant_a, connected, sim):  # noqa: F811
    tactical = Tactical(api_a, sim)
    for _ in range(12):
        assert tactical.send(sim.add_alert(sim.front)["id"]).status_code == 202
    integration_id = Integration.objects.unscoped().get(tenant=tenant_a.tenant, provider="tactical").pk
    _spread_history(tenant_a.tenant, integration_id, dt.timedelta(minutes=1), dt.timedelta(minutes=10))
    # Tactical raised an alert an hour ago and its webhook never came; a fresh one may still be on its way.
    sim.add_alert(sim.srv, alert_time=timezone.now() - dt.timedelta(hours=1), message="Missed by the webhook")
    sim.add_alert(sim.srv, alert_time=timezone.now(), message="Just now")
    job = run_job(api_a, f"{T}/alerts/poll/")
    assert job["summary"]["unannounced"] == 1
    body = ok(api_a.get(f"{T}/health/"))
    assert body["quiet"] is True and body["poll_unannounced"] == 1
    assert "found 1 active alert(s) that no webhook announced" in body["quiet_reason"]
    assert check_all_quiet() == {"raised": 1}
