"""POST /webhooks/{provider}/{key}/: answers, the event log, redelivery, broker outages."""

from __future__ import annotations

import datetime as dt
import json
import time
from unittest import mock

import pytest
from django.test import override_settings
from django.utils import timezone
from kombu.exceptions import OperationalError

from alerts.models import Alert, InboundEvent
from alerts.services import events as event_svc
from alerts.tasks import drain_inbound, process_inbound_event, sweep_inbound_events
from integrations.models import Integration
from psa.tenancy import tenant_context
from tests.integration.pipeline_support import SECRET, setup_fake, trigger

pytestmark = pytest.mark.django_db


@pytest.fixture
def fx(tenant_a, fake_provider):
    return setup_fake(tenant_a.tenant)


def _events(fx, **filters):
    return list(InboundEvent.objects.unscoped().filter(integration=fx.integration, **filters).order_by("id"))


def test_accepted_event_is_processed_into_a_ticket(fx):
    r = fx.post(trigger("a-1"))
    assert r.status_code == 202, r.content
    body = r.json()
    assert body["status"] == "accepted" and isinstance(body["event_id"], int)
    event = InboundEvent.objects.unscoped().get(pk=body["event_id"])
    assert event.status == "processed", event.error
    assert event.attempts == 1 and event.processed_at is not None
    assert event.result["actions"] == ["ticket_created"]
    (ticket,) = fx.tickets()
    assert ticket.source == "alert" and ticket.client_id == fx.client.pk
    assert event.result["tickets"] == [ticket.pk]
    assert "new ticket" in event.summary
    fx.integration.refresh_from_db()
    assert fx.integration.last_webhook_at is not None


def test_unknown_key_and_provider_mismatch_are_404(fx, tenant_b):
    r = fx.post(trigger("a-1"), http=None)
    assert r.status_code == 202
    from django.test import Client

    http = Client()
    bad_key = http.post(
        "/webhooks/fake/not-a-key/",
        data="{}",
        content_type="application/json",
        HTTP_X_PSA_WEBHOOK_SECRET=SECRET,
    )
    assert bad_key.status_code == 404 and bad_key.json() == {"detail": "Not found."}
    wrong_provider = http.post(
        f"/webhooks/generic/{fx.integration.webhook_key}/",
        data="{}",
        content_type="application/json",
        HTTP_X_PSA_WEBHOOK_SECRET=SECRET,
    )
    assert wrong_provider.status_code == 404
    unknown_provider = http.post(
        f"/webhooks/nope/{fx.integration.webhook_key}/", data="{}", content_type="application/json"
    )
    assert unknown_provider.status_code == 404


@pytest.mark.parametrize("secret", [None, "", "wrong-secret", SECRET[:-1]])
def test_wrong_or_missing_secret_is_401_without_hint_and_not_stored(fx, secret):
    r = fx.post(trigger("a-1"), secret=secret)
    assert r.status_code == 401
    assert r.json() == {"detail": "Unauthorized"}
    assert _events(fx) == []


def test_secret_in_query_only_for_providers_that_need_it(fx, fake_provider):
    from django.test import Client

    url = f"{fx.url}?secret={SECRET}"
    r = Client().post(url, data=json.dumps(trigger("q-1")), content_type="application/json")
    assert r.status_code == 401
    fake_provider.webhook_secret_in_query = True
    r = Client().post(url, data=json.dumps(trigger("q-1")), content_type="application/json")
    assert r.status_code == 202
    (event,) = _events(fx)
    assert event.query == {"secret": "[redacted]"}


def test_secret_and_auth_headers_are_redacted_in_the_log(fx):
    r = fx.post(trigger("a-1"), HTTP_AUTHORIZATION="Bearer abc", HTTP_X_TRACE="t-1")
    assert r.status_code == 202
    (event,) = _events(fx)
    assert event.headers["x-psa-webhook-secret"] == "[redacted]"
    assert event.headers["authorization"] == "[redacted]"
    assert event.headers["x-trace"] == "t-1"
    assert SECRET not in json.dumps(event.headers)


def test_unparseable_body_is_400_and_kept_as_failed(fx):
    r = fx.post(b"{not json", secret=SECRET)
    assert r.status_code == 400
    assert "Body is not JSON" in r.json()["detail"]
    (event,) = _events(fx)
    assert event.status == "failed" and "Body is not JSON" in event.error
    assert bytes(event.body) == b"{not json"
    assert event.delivery_id is None


@override_settings(PSA_WEBHOOK_MAX_BYTES=1000)
def test_oversized_body_is_413_and_logged_truncated(fx):
    big = json.dumps(trigger("a-1", message="x" * 5000))
    r = fx.post(big)
    assert r.status_code == 413
    assert "1000-byte limit" in r.json()["detail"]
    (event,) = _events(fx)
    assert event.status == "failed" and "over the 1000-byte limit" in event.error
    assert event.size == len(big)
    assert 0 < len(bytes(event.body)) <= 64 * 1024
    # Oversized and unauthenticated: refused without a trace.
    r = fx.post(big, secret="wrong")
    assert r.status_code == 401
    assert len(_events(fx)) == 1
    assert Alert.objects.unscoped().count() == 0


def test_redelivery_is_202_without_a_second_effect(fx):
    payload = trigger("a-1", delivery_id="d-1")
    first = fx.post(payload)
    second = fx.post(payload)
    assert first.status_code == second.status_code == 202
    assert second.json()["duplicate"] is True
    original, dup = _events(fx)
    assert original.status == "processed" and original.delivery_id == "d-1"
    assert dup.status == "duplicate" and dup.delivery_id is None and dup.duplicate_of_id == original.pk
    assert len(fx.tickets()) == 1
    assert Alert.objects.unscoped().count() == 1


def test_same_body_without_delivery_id_is_deduplicated_by_hash(fx):
    payload = trigger("a-1")
    fx.post(payload)
    r = fx.post(payload)
    assert r.json().get("duplicate") is True
    original, dup = _events(fx)
    assert original.delivery_id.startswith("sha256:")
    assert dup.status == "duplicate"


def test_same_alert_id_in_a_new_delivery_changes_nothing(fx):
    fx.post(trigger("a-1", delivery_id="d-1"))
    fx.post(trigger("a-1", delivery_id="d-2"))
    _first, second = _events(fx)
    assert second.status == "processed" and second.result["actions"] == ["redelivery"]
    (ticket,) = fx.tickets()
    assert ticket.occurrence_count == 1
    with tenant_context(fx.tenant):
        assert ticket.notes.count() == 1  # the creation note only


def test_nul_characters_are_stripped(fx):
    r = fx.post(trigger("a-\u00001", title="Disk\u0000 low"), HTTP_X_ODD="a\u0000b")
    assert r.status_code == 202
    (event,) = _events(fx)
    assert event.status == "processed", event.error
    alert = Alert.objects.unscoped().get()
    assert alert.external_id == "a-1" and alert.title == "Disk low"


def test_broker_down_keeps_the_event_and_the_sweeper_enqueues_it(fx):
    with mock.patch.object(drain_inbound, "apply_async", side_effect=OperationalError("broker down")):
        r = fx.post(trigger("a-1"))
    assert r.status_code == 202
    (event,) = _events(fx)
    assert event.status == "accepted" and event.claimed_at is None
    assert fx.tickets() == []
    # Too fresh for the sweeper (the request may still be enqueueing it).
    assert sweep_inbound_events() == {"found": 0, "enqueued": 0}
    InboundEvent.objects.unscoped().filter(pk=event.pk).update(
        received_at=timezone.now() - dt.timedelta(minutes=2)
    )
    # Broker still down: found, not enqueued, left for the next sweep.
    with mock.patch.object(drain_inbound, "apply_async", side_effect=OperationalError("broker down")):
        assert sweep_inbound_events() == {"found": 1, "enqueued": 0}
    event.refresh_from_db()
    assert event.status == "accepted" and event.claimed_at is None
    assert sweep_inbound_events() == {"found": 1, "enqueued": 1}
    event.refresh_from_db()
    assert event.status == "processed"
    assert len(fx.tickets()) == 1
    # Nothing left to sweep.
    assert sweep_inbound_events()["found"] == 0


def test_sweeper_takes_over_an_event_whose_worker_died(fx):
    with mock.patch.object(drain_inbound, "apply_async"):  # "enqueued", never run
        fx.post(trigger("a-1"))
    (event,) = _events(fx)
    long_ago = timezone.now() - dt.timedelta(hours=1)
    # A worker claimed it an hour ago and died (lease long expired).
    InboundEvent.objects.unscoped().filter(pk=event.pk).update(
        received_at=long_ago, enqueued_at=long_ago, claimed_at=long_ago, attempts=1
    )
    assert sweep_inbound_events()["enqueued"] == 1
    event.refresh_from_db()
    assert event.status == "processed" and event.attempts == 2
    assert len(fx.tickets()) == 1


def test_a_live_claim_is_not_taken_twice(fx):
    with mock.patch.object(drain_inbound, "apply_async"):
        fx.post(trigger("a-1"))
    (event,) = _events(fx)
    with tenant_context(fx.tenant):
        fence = event_svc.claim(event.pk)
        assert fence is not None
        assert event_svc.claim(event.pk) is None  # a second delivery of the message finds it taken
        assert process_inbound_event.apply(args=[fx.tenant.pk, event.pk]).get() is None
    assert fx.tickets() == []


@pytest.fixture
def one_minute():
    """The flood counters are per clock minute: a flood test starts with at least 10 s of its minute
    left, so its requests are not split between two minutes' counters."""
    left = 60 - time.time() % 60
    if left < 10:
        time.sleep(left + 0.05)


@override_settings(PSA_WEBHOOK_FLOOD_PER_MINUTE=3)
def test_absurd_flood_gets_429(fx, one_minute):
    from django.core.cache import cache

    cache.clear()
    codes = [fx.post(trigger(f"f-{i}")).status_code for i in range(5)]
    assert codes[:3] == [202, 202, 202] and codes[3:] == [429, 429]
    assert len(_events(fx)) == 3


def test_disabled_integration_is_404(fx):
    assert fx.post(trigger("a-0")).status_code == 202  # loaded (and kept by this process)
    Integration.objects.unscoped().filter(pk=fx.integration.pk).update(enabled=False)
    assert fx.post(trigger("a-1")).status_code == 404
    Integration.objects.unscoped().filter(pk=fx.integration.pk).update(enabled=True)
    assert fx.post(trigger("a-2")).status_code == 202
    Integration.objects.unscoped().filter(pk=fx.integration.pk).delete()
    assert fx.post(trigger("a-3")).status_code == 404


def test_a_known_integration_costs_one_version_read(fx, django_assert_num_queries):
    """The integration is built once per process and reused while its row is unchanged; any change,
    even one made with a queryset update (no signal), is seen on the next request."""
    from alerts.services import intake

    assert fx.post(trigger("v-1")).status_code == 202  # loads it, then notes last_webhook_at (a change)
    assert fx.post(trigger("v-2")).status_code == 202  # loads it again, as it now stands
    with django_assert_num_queries(1):
        first = intake._lookup(fx.integration.provider, fx.integration.webhook_key)
    with django_assert_num_queries(1):
        again = intake._lookup(fx.integration.provider, fx.integration.webhook_key)
    assert first is not again and first.pk == again.pk == fx.integration.pk  # each request its own copy
    Integration.objects.unscoped().filter(pk=fx.integration.pk).update(settings={"changed": True})
    with django_assert_num_queries(2):  # the version moved: loaded again
        assert intake._lookup(fx.integration.provider, fx.integration.webhook_key).settings == {"changed": True}


def test_get_is_405_json(fx):
    from django.test import Client

    r = Client().get(fx.url)
    assert r.status_code == 405 and r.json()["detail"]


def test_provider_signature_scheme_replaces_the_shared_secret(fx, fake_provider):
    import hashlib
    import hmac

    from integrations.base import SignatureScheme

    class FakeHmac(SignatureScheme):
        name = "fake-hmac"
        headers = ("X-Fake-Signature",)

        def verify(self, request, secret):
            supplied = request.headers.get("x-fake-signature")
            if supplied is None:
                return None  # no signature: fall back to the shared-secret header
            expected = "sha256=" + hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
            return hmac.compare_digest(supplied, expected)

    fake_provider.signature_scheme = FakeHmac()
    body = json.dumps(trigger("s-1")).encode()
    good = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert fx.post(body, secret=None, HTTP_X_FAKE_SIGNATURE=good).status_code == 202
    assert fx.post(body, secret=None, HTTP_X_FAKE_SIGNATURE="sha256=00").status_code == 401
    # A valid shared secret does not rescue a bad signature.
    assert fx.post(body, secret=SECRET, HTTP_X_FAKE_SIGNATURE="sha256=00").status_code == 401
    assert fx.post(json.dumps(trigger("s-2")), secret=SECRET).status_code == 202


def test_bad_signature_is_401_and_kept_as_a_failed_event_without_secrets(fx, fake_provider, monkeypatch):
    """A signed request whose signature does not match (e.g. a mistyped secret in the provider) is refused,
    and the event log shows why; an unsigned request with a wrong shared secret is still not stored."""
    import hashlib
    import hmac

    from alerts.services import intake
    from integrations.base import SignatureScheme

    class FakeHmac(SignatureScheme):
        name = "fake-hmac"
        headers = ("X-Fake-Signature",)

        def verify(self, request, secret):
            supplied = request.headers.get("x-fake-signature")
            if supplied is None:
                return None
            expected = "sha256=" + hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
            return hmac.compare_digest(supplied, expected)

    fake_provider.signature_scheme = FakeHmac()
    body = json.dumps(trigger("b-1")).encode()
    r = fx.post(body, secret=SECRET, HTTP_X_FAKE_SIGNATURE="sha256=" + "0" * 64, HTTP_AUTHORIZATION="Bearer t")
    assert r.status_code == 401 and r.json() == {"detail": "Unauthorized"}
    (event,) = _events(fx)
    assert event.status == "failed" and event.summary == "Bad signature"
    assert "Signature check failed (X-Fake-Signature)" in event.error and "401" in event.error
    assert bytes(event.body) == body and event.delivery_id is None
    assert event.headers["x-psa-webhook-secret"] == "[redacted]" and event.headers["authorization"] == "[redacted]"
    assert SECRET not in json.dumps(event.headers) and SECRET not in event.error
    assert not Alert.objects.unscoped().exists()  # refused: nothing processed
    # Unsigned with a wrong shared secret: 401, not stored (a guesser leaves no trace).
    assert fx.post(json.dumps(trigger("b-2")), secret="wrong").status_code == 401
    assert len(_events(fx)) == 1
    # A stranger cannot fill the table: a few per minute are kept, every one is refused.
    monkeypatch.setattr(intake, "BAD_SIGNATURE_KEEP_PER_MINUTE", 3)
    for _ in range(10):
        assert fx.post(body, secret=None, HTTP_X_FAKE_SIGNATURE="sha256=00").status_code == 401
    assert 3 <= len(_events(fx)) <= 6  # 3 per minute (twice if the minute turned meanwhile)


def test_rotated_secret_is_refused_at_once(fx):
    """The decrypted secret is cached per ciphertext; rotation writes a new one, so the old
    secret stops working on the very next request (no TTL to wait out)."""
    from integrations.services import config

    assert fx.post(trigger("r-1")).status_code == 202  # the old secret is now in the cache
    with tenant_context(fx.tenant):
        new_secret = config.rotate_webhook_secret(fx.integration)
    assert fx.post(trigger("r-2")).status_code == 401
    assert fx.post(trigger("r-3"), secret=new_secret).status_code == 202
    assert fx.post(trigger("r-4")).status_code == 401


def test_secret_is_refused_once_its_encryption_key_is_removed(fx):
    from cryptography.fernet import Fernet

    assert fx.post(trigger("k-1")).status_code == 202  # decrypted and cached under the current keys
    with override_settings(PSA_CREDENTIAL_KEYS=[Fernet.generate_key().decode()]):
        assert fx.post(trigger("k-2")).status_code == 401
    assert fx.post(trigger("k-3")).status_code == 202


@override_settings(PSA_WEBHOOK_FLOOD_PER_MINUTE=200)
def test_flood_counter_is_shared_across_processes_in_batches(fx, monkeypatch, one_minute):
    """Each process adds to the shared (Redis) counter in batches of 1 % of the limit; the
    limit holds within this process, and another process sees the shared total."""
    from django.core.cache import cache

    from alerts.services import intake

    cache.clear()
    monkeypatch.setattr(intake, "_flood", {})
    monkeypatch.setattr(intake, "FLOOD_SYNC_SECONDS", 3600.0)  # only the batch size triggers a sync
    now = (int(time.time()) // 60) * 60 + 30.0
    monkeypatch.setattr(time, "time", lambda: now)  # no minute boundary inside the test
    answers = [intake.flooded(fx.integration.pk) for _ in range(201)]
    assert answers[:200] == [False] * 200 and answers[200] is True
    minute = int(now // 60)
    shared = cache.get(f"psa:webhook-flood:{fx.integration.pk}:{minute}")
    assert 199 <= shared <= 201  # synced two at a time (batch = 1 % of 200)
    # Another process (fresh local state) syncs on its first request and sees the shared total.
    monkeypatch.setattr(intake, "_flood", {})
    assert intake.flooded(fx.integration.pk) is True


def test_lookup_gives_the_provider_a_fully_converted_integration(fx):
    """The lookup is a raw SELECT; JSON and datetime fields must come back as Python values
    (a provider's signature check or parser may read integration.settings)."""
    from alerts.services.intake import _lookup

    Integration.objects.unscoped().filter(pk=fx.integration.pk).update(
        settings={"region": "eu"}, last_webhook_at=timezone.now()
    )
    found = _lookup("fake", fx.integration.webhook_key)
    assert found.pk == fx.integration.pk and found.tenant_id == fx.tenant.pk
    assert found.settings == {"region": "eu"}
    assert timezone.is_aware(found.last_webhook_at)
    assert _lookup("generic", fx.integration.webhook_key) is None  # provider mismatch


@override_settings(PSA_WEBHOOK_FLOOD_PER_MINUTE=100, PSA_WEBHOOK_FLOOD_PER_MINUTE_TENANT=5)
def test_flood_limit_per_tenant_counts_all_its_integrations(fx, monkeypatch, one_minute):
    from django.core.cache import cache

    from alerts.services import intake

    cache.clear()
    monkeypatch.setattr(intake, "_flood", {})
    now = (int(time.time()) // 60) * 60 + 30.0
    monkeypatch.setattr(time, "time", lambda: now)
    tenant = fx.tenant.pk
    # Two integrations of one tenant share the tenant's budget; another tenant has its own.
    answers = [intake.flooded(integration, tenant) for integration in (1, 2, 1, 2, 1, 2)]
    assert answers == [False] * 5 + [True]
    assert intake.flooded(3, tenant + 1000) is False


def test_database_down_answers_503_and_stores_nothing(tenant_a, fake_provider):
    """PostgreSQL unreachable while a webhook arrives: 503 with Retry-After, never a 202 (the e2e fault test
    cuts a real connection: tests/e2e/test_e2e_faults.py)."""
    from django.db import OperationalError as DbDown

    from alerts.services import intake

    fx = setup_fake(tenant_a.tenant)
    with mock.patch.object(intake.events, "store_accepted", side_effect=DbDown("server closed the connection")):
        r = fx.post(trigger("db-1"))
    assert r.status_code == 503 and r["Retry-After"] == "5" and "retry" in r.json()["detail"]
    assert not InboundEvent.objects.unscoped().filter(integration=fx.integration).exists()
    assert fx.post(trigger("db-1")).status_code == 202
