"""The provider contract suite: what every provider must do, written once.

A provider's test module subclasses the mixins that match its capabilities and declares a few
attributes (its slug, its simulator, sample bodies); it then inherits every test below. Pattern:
NetBox's generic API test-case bases, and Grafana OnCall's per-integration sample payloads run
through one generic test.

    class TestTacticalContract(WebhookContract, ConnectionContract, OrganizationContract, ...):
        slug = "tactical"
        good_bodies = [...]
        def make_simulator(self): return TacticalSimulator()
        ...

Mixins: ProviderContract (registration, write-only credentials), WebhookContract (inspect/parse,
hostile bodies, severities, condition keys, the card), IncidentWebhookContract (the same for webhooks
that carry incident reports: IncidentRecords, no condition keys), SignatureContract, TimestampedSignatureContract,
ConnectionContract (401/403/404/HTML/timeout/5xx/429 told apart), OrganizationContract,
DeviceContract (streamed pages), PollContract, ResetContract.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from django.test import Client as WebClient

from alerts.models import InboundEvent
from integrations import http as phttp
from integrations.base import WebhookRequest
from integrations.errors import ProviderError, WebhookParseError
from integrations.models import Integration, IntegrationStatus
from integrations.records import SEVERITIES, EscalationRecord, ExternalOrg, IncidentRecord, PollResult
from integrations.registry import get_provider, get_provider_class
from integrations.web import webhook_view
from tests.conftest import token_client
from tests.helpers import committed, ok

MIB = 1024 * 1024


class ProviderContract:
    """Registration, metadata and write-only credentials. Subclasses set ``slug`` and, for a provider
    with credentials, ``make_simulator``/``credentials``/``base_url``."""

    slug: ClassVar[str]

    # -- what a provider module declares ------------------------------------------------------
    def make_simulator(self):
        """A SimulatorServer (not started) of the provider's API, or None for a provider we never call."""
        return None

    def credentials(self, sim) -> dict[str, Any]:
        return {}

    def base_url(self, sim) -> str:
        return ""

    def settings(self) -> dict[str, Any]:
        """Stored settings of the ``integration`` fixture's row."""
        return {}

    def connect_body(self, sim) -> dict[str, Any]:
        """The PUT integrations/{slug}/ body an admin sends."""
        body: dict[str, Any] = {}
        if self.credentials(sim):
            body["credentials"] = self.credentials(sim)
        if self.base_url(sim):
            body["base_url"] = self.base_url(sim)
        return body

    # -- fixtures -------------------------------------------------------------------------------
    @pytest.fixture
    def sim(self) -> Iterator[Any]:
        server = self.make_simulator()
        if server is None:
            yield None
            return
        with server:
            self.seed(server)
            yield server

    def seed(self, sim) -> None:
        """Put the data the tests need into a started simulator."""

    @pytest.fixture
    def admin(self, tenant_a):
        return token_client(tenant_a.api_token)

    @pytest.fixture
    def connected(self, admin, sim, fast, tenant_a):
        """The integration as an admin sets it up through the API (connection test included)."""
        ok(admin.put(f"/api/v1/integrations/{self.slug}/", self.connect_body(sim), format="json"))
        return Integration.objects.unscoped().get(provider=self.slug, tenant=tenant_a.tenant)

    @pytest.fixture
    def integration(self, make_tenant, sim):
        """A row pointing at the simulator, connected (no API round trip), in a tenant of its own."""
        tenant = make_tenant().tenant
        row = Integration.objects.unscoped().create(
            tenant=tenant, provider=self.slug, base_url=self.base_url(sim), status=IntegrationStatus.CONNECTED,
            settings=self.settings())
        if self.credentials(sim):
            row.set_credentials(self.credentials(sim))
            row.save(update_fields=["credentials_ciphertext"])
        return row

    @pytest.fixture
    def provider(self, integration, fast):
        p = get_provider(integration)
        yield p
        p.close()

    # -- tests ----------------------------------------------------------------------------------
    def test_registered_with_declared_metadata(self):
        cls = get_provider_class(self.slug)
        assert cls.slug == self.slug and cls.name
        caps = cls.capabilities
        assert caps.webhooks == _overrides(cls, "inspect_webhook") == _overrides(cls, "parse_webhook")
        assert caps.polling == _overrides(cls, "poll_alerts")
        assert caps.reset_on_close == _overrides(cls, "reset_alert")
        assert caps.device_sync == _overrides(cls, "iter_devices")
        if caps.webhooks or caps.polling:
            assert cls.severity_map is not None, "a provider that reports alerts declares its severity map"
        names = [f.name for f in cls.credential_fields]
        for cs in cls.credential_sets:
            assert set(cs.fields) <= set(names), f"credential set {cs.name} names undeclared fields"

    def test_credentials_are_write_only_in_api_and_page(self, connected, admin, tenant_a, sim):
        secrets_typed = [str(v) for k, v in self.credentials(sim).items()
                         if _is_secret(get_provider_class(self.slug), k)]
        answer = json.dumps(ok(admin.get(f"/api/v1/integrations/{self.slug}/")))
        listing = json.dumps(ok(admin.get("/api/v1/integrations/")))
        web = WebClient()
        web.force_login(tenant_a.user)
        page = web.get(f"/settings/integrations/rmm/{self.slug}/").content.decode()
        for secret in secrets_typed:
            assert secret not in answer and secret not in listing and secret not in page
        state = ok(admin.get(f"/api/v1/integrations/{self.slug}/"))["credentials"]
        for name in self.credentials(sim):
            assert state[name]["set"] is True


def _overrides(cls, method: str) -> bool:
    from integrations.base import Provider

    return getattr(cls, method) is not getattr(Provider, method)


def _is_secret(cls, name: str) -> bool:
    return next((f.secret for f in cls.credential_fields if f.name == name), True)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


class WebhookContract(ProviderContract):
    """Inspecting and parsing webhook bodies, good and hostile; the webhook card."""

    # Bodies exactly as the provider posts them, each carrying at least one alert.
    good_bodies: ClassVar[list[bytes]] = []

    def two_devices(self) -> tuple[bytes, bytes]:
        """Two bodies of the same check on two different devices."""
        raise NotImplementedError

    def request(self, body: bytes, **headers: str) -> WebhookRequest:
        return WebhookRequest(body=body, headers={k.lower(): v for k, v in headers.items()}, query={})

    def auth_headers(self, card: dict[str, Any], body: bytes) -> dict[str, str]:
        """Django test-client headers (HTTP_...) that authenticate ``body`` at intake."""
        return {"HTTP_" + card["header_name"].upper().replace("-", "_"): card["secret"]}

    @pytest.fixture
    def webhook_provider(self, integration, fast):
        p = get_provider(integration)
        yield p
        p.close()

    def hostile_bodies(self) -> dict[str, bytes]:
        good = self.good_bodies[0]
        nulls = json.dumps(_nulled(json.loads(good))).encode()
        return {
            "garbage": b"\x00\xff\xfe<<not json>>",
            "empty": b"",
            "truncated": good[: len(good) // 2],
            "one MiB of junk": b"[" + b"1," * (MIB // 2 - 2) + b"1]",
            "unicode": json.dumps({"id": "\u2603", "title": "\u00e9\u4e2d\U0001F600", "message": "\u202e"}).encode(),
            "nulls": nulls,
            "a JSON array": b"[]",
            "a JSON string": b'"hello"',
            "deep nesting": b'{"a":' * 500 + b"1" + b"}" * 500,
        }

    def test_good_bodies_inspect_and_parse(self, webhook_provider):
        assert self.good_bodies, "declare at least one good body"
        for body in self.good_bodies:
            envelope = webhook_provider.inspect_webhook(self.request(body))
            assert envelope.summary, body
            alerts = webhook_provider.parse_webhook(self.request(body))
            assert alerts, body
            for alert in alerts:
                assert alert.provider == self.slug and alert.external_id and alert.condition_key
                assert alert.severity in SEVERITIES

    def test_redelivery_is_stable(self, webhook_provider):
        for body in self.good_bodies:
            first = webhook_provider.inspect_webhook(self.request(body))
            again = webhook_provider.inspect_webhook(self.request(body))
            assert first.delivery_id == again.delivery_id
            a = webhook_provider.parse_webhook(self.request(body))
            b = webhook_provider.parse_webhook(self.request(body))
            assert [(x.external_id, x.condition_key) for x in a] == [(x.external_id, x.condition_key) for x in b]

    def test_condition_key_differs_across_devices(self, webhook_provider):
        one, two = self.two_devices()
        [a] = webhook_provider.parse_webhook(self.request(one))
        [b] = webhook_provider.parse_webhook(self.request(two))
        assert a.condition_key != b.condition_key

    def test_hostile_bodies_never_raise_anything_but_a_parse_error(self, webhook_provider):
        for name, body in self.hostile_bodies().items():
            for step in (webhook_provider.inspect_webhook, webhook_provider.parse_webhook):
                try:
                    result = step(self.request(body))
                except WebhookParseError as exc:
                    assert str(exc), f"{name}: a parse error says why"
                    continue
                if isinstance(result, list):
                    for alert in result:
                        assert alert.severity in SEVERITIES, name

    def test_hostile_bodies_through_intake_are_kept_never_a_500(self, connected, admin, fast):
        card = ok(admin.get(f"/api/v1/integrations/{self.slug}/webhook/"))
        web = WebClient()
        for name, body in self.hostile_bodies().items():
            with committed():
                r = web.post(card["url"], data=body, content_type="application/json", **self.auth_headers(card, body))
            assert r.status_code in (202, 400), f"{name}: {r.status_code} {r.content[:200]!r}"
            assert r["Content-Type"].startswith("application/json"), name
            event = InboundEvent.objects.unscoped().get(pk=r.json()["event_id"])
            if r.status_code == 400:
                assert event.status == "failed" and event.error, name
            else:
                assert event.status in ("processed", "failed", "duplicate"), name

    def test_webhook_card_has_every_key_the_page_shows(self, connected, admin, tenant_a):
        card = ok(admin.get(f"/api/v1/integrations/{self.slug}/webhook/"))
        for key in ("url", "header_name", "secret", "payload_template"):
            assert key in card, key
        assert f"/webhooks/{self.slug}/{connected.webhook_key}/" in card["url"] and card["secret"]
        shown = webhook_view.view(webhook_view.without_secret({k: v for k, v in card.items() if k != "secret"},
                                                              card["secret"]))
        values = set(_strings(card))
        for box in shown["boxes"]:
            text = box["text"].replace(webhook_view.SECRET_PLACEHOLDER, card["secret"])
            assert text in values, f"the page shows {box['label']!r}, which the API card does not carry"
        web = WebClient()
        web.force_login(tenant_a.user)
        page = web.get(f"/settings/integrations/rmm/{self.slug}/").content.decode()
        assert card["url"] in page and card["header_name"] in page and card["secret"] not in page


class IncidentWebhookContract(WebhookContract):
    """A provider whose webhooks carry security incidents, not alerts: ``parse_webhook`` returns
    IncidentRecords (and EscalationRecords) for the incident router. Replaces WebhookContract's
    alert-centric checks (condition keys, an alert in every good body) with the incident ones."""

    def two_reports(self) -> tuple[bytes, bytes]:
        """Bodies about two different incident reports."""
        raise NotImplementedError

    # Incidents have no condition key: see test_two_reports_are_two_incidents.
    test_condition_key_differs_across_devices = None

    def _records(self, provider, body: bytes) -> list:
        return list(provider.parse_webhook(self.request(body)))

    def test_declares_incidents(self):
        cls = get_provider_class(self.slug)
        assert cls.capabilities.incidents is True
        assert _overrides(cls, "incident") and _overrides(cls, "resolve_incident")

    def test_good_bodies_inspect_and_parse(self, webhook_provider):
        assert self.good_bodies, "declare at least one good body"
        for body in self.good_bodies:
            envelope = webhook_provider.inspect_webhook(self.request(body))
            assert envelope.summary, body
            records = self._records(webhook_provider, body)
            assert records, body
            for record in records:
                assert isinstance(record, (IncidentRecord, EscalationRecord)), record
                assert record.provider == self.slug and record.external_id
                assert record.severity in SEVERITIES or (record.partial and record.severity == "")

    def test_redelivery_is_stable(self, webhook_provider):
        for body in self.good_bodies:
            first = webhook_provider.inspect_webhook(self.request(body))
            again = webhook_provider.inspect_webhook(self.request(body))
            assert first.delivery_id == again.delivery_id
            a, b = self._records(webhook_provider, body), self._records(webhook_provider, body)
            assert [(type(x), x.external_id) for x in a] == [(type(x), x.external_id) for x in b]
            assert [x.state() for x in a if isinstance(x, IncidentRecord)] == [
                x.state() for x in b if isinstance(x, IncidentRecord)]

    def test_two_reports_are_two_incidents(self, webhook_provider):
        one, two = self.two_reports()
        [a] = self._records(webhook_provider, one)
        [b] = self._records(webhook_provider, two)
        assert a.external_id != b.external_id

    def test_hostile_bodies_never_raise_anything_but_a_parse_error(self, webhook_provider):
        for name, body in self.hostile_bodies().items():
            for step in (webhook_provider.inspect_webhook, webhook_provider.parse_webhook):
                try:
                    result = step(self.request(body))
                except WebhookParseError as exc:
                    assert str(exc), f"{name}: a parse error says why"
                    continue
                if isinstance(result, list):
                    for record in result:
                        assert isinstance(record, (IncidentRecord, EscalationRecord)), name
                        assert record.severity in (*SEVERITIES, ""), name


def _nulled(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _nulled(v) if isinstance(v, (dict, list)) else None for k, v in value.items()}
    if isinstance(value, list):
        return [_nulled(v) for v in value]
    return None


class SignatureContract(WebhookContract):
    """A provider that declares a signature scheme: good, bad, missing, tampered, replayed."""

    def signed_headers(self, body: bytes, secret: str) -> dict[str, str]:
        """Request headers (lower-case names) the provider sends with ``body`` signed by ``secret``."""
        raise NotImplementedError

    def signing_secret(self, integration: Integration, card: dict[str, Any]) -> str:
        return card["secret"]

    def auth_headers(self, card, body):
        secret = card["_signing_secret"] if "_signing_secret" in card else card["secret"]
        return {"HTTP_" + k.upper().replace("-", "_"): v for k, v in self.signed_headers(body, secret).items()}

    def _verify(self, provider, body: bytes, headers: dict[str, str], secret: str):
        scheme = type(provider).signature_scheme
        return scheme.verify(WebhookRequest(body=body, headers=headers, query={}),
                             provider.webhook_signing_secret(secret))

    def test_signature_good_bad_missing_tampered(self, webhook_provider):
        secret = self.sample_signing_secret()
        body = self.good_bodies[0]
        assert type(webhook_provider).signature_scheme is not None
        assert self._verify(webhook_provider, body, self.signed_headers(body, secret), secret) is True
        assert self._verify(webhook_provider, body, self.signed_headers(body, secret + "x"), secret) is False
        assert self._verify(webhook_provider, body + b" ", self.signed_headers(body, secret), secret) is False
        assert self._verify(webhook_provider, body, {}, secret) in (None, False)  # None: shared-secret fallback

    def sample_signing_secret(self) -> str:
        return "whsec_dGVzdC1zaWduaW5nLXNlY3JldC0wMTIzNDU2Nzg5"

    def test_replayed_delivery_has_no_second_effect(self, connected, admin, fast):
        card = ok(admin.get(f"/api/v1/integrations/{self.slug}/webhook/"))
        card["_signing_secret"] = self.signing_secret(connected, card)
        body = self.good_bodies[0]
        headers = self.auth_headers(card, body)
        web = WebClient()
        with committed():
            first = web.post(card["url"], data=body, content_type="application/json", **headers)
            again = web.post(card["url"], data=body, content_type="application/json", **headers)
        assert first.status_code == 202 and again.status_code == 202, (first.content, again.content)
        assert again.json().get("duplicate") is True
        assert InboundEvent.objects.unscoped().get(pk=again.json()["event_id"]).duplicate_of_id == first.json()["event_id"]


class TimestampedSignatureContract(SignatureContract):
    """A scheme that signs a timestamp: an old one is refused (Svix: 5 minutes)."""

    def stale_headers(self, body: bytes, secret: str) -> dict[str, str]:
        raise NotImplementedError

    def test_stale_timestamp_is_refused(self, webhook_provider):
        secret = self.sample_signing_secret()
        body = self.good_bodies[0]
        assert self._verify(webhook_provider, body, self.stale_headers(body, secret), secret) is False


class ConnectionContract(ProviderContract):
    """The connection test tells apart what an admin must fix differently."""

    def test_connection_ok(self, provider):
        result = provider.test_connection()
        assert result.ok is True and result.message

    def test_connection_failures_have_distinct_human_messages(self, provider, sim, settings, monkeypatch):
        settings.PSA_HTTP_RETRIES = 0
        settings.PSA_HTTP_TIMEOUT = 0.5
        monkeypatch.setattr(phttp, "_sleep", lambda s: None)
        messages: dict[str, str] = {}
        cases = {
            "401": lambda: sim.fail_next(1, 401, {"detail": "Invalid token."}),
            "403": lambda: sim.fail_next(1, 403, {"detail": "You do not have permission."}),
            "404": lambda: sim.fail_next(1, 404, {"detail": "Not found."}),
            "html": lambda: setattr(sim, "html_mode", True),
            "timeout": lambda: setattr(sim, "delay", 1.5),
            "5xx": lambda: sim.fail_next(3, 503),
            "429": lambda: sim.fail_next(3, 429, {"detail": "slow down"}, {"Retry-After": "0"}),
        }
        for name, arrange in cases.items():
            sim.html_mode, sim.delay = False, 0.0
            sim._fail.clear()
            self.reset_auth(provider)
            arrange()
            try:
                result = provider.test_connection()
                ok_, message = result.ok, result.message
            except ProviderError as exc:  # the framework's test_connection explains raised errors too
                ok_, message = False, str(exc)
            assert ok_ is False, f"{name}: reported as connected"
            assert message and "Traceback" not in message, name
            messages[name] = message
        sim.html_mode, sim.delay = False, 0.0
        assert len(set(messages.values())) == len(messages), messages

    def reset_auth(self, provider) -> None:
        """Drop cached tokens/clients so the next call starts from scratch (e.g. an OAuth token)."""
        provider.close()


class OrganizationContract(ProviderContract):
    # True when the provider has a hierarchy (sites, locations, subgroups): some org has a parent.
    orgs_have_parents: ClassVar[bool] = True

    def test_organizations(self, provider):
        orgs = list(provider.list_organizations())
        assert orgs and all(isinstance(o, ExternalOrg) and o.external_id and o.name for o in orgs)
        ids = {o.external_id for o in orgs}
        assert len(ids) == len(orgs), "organization ids are unique"
        if self.orgs_have_parents:
            assert any(o.parent_external_id in ids for o in orgs)


class DeviceContract(ProviderContract):
    """Devices stream page by page: the first device arrives before the last page is fetched."""

    many_devices: ClassVar[int] = 450

    def seed_many_devices(self, sim, n: int) -> set[str]:
        """Add ``n`` devices in the simulator; return the organization ids to ask for."""
        raise NotImplementedError

    def device_page_calls(self, sim) -> int:
        """How many device-list pages the simulator has served."""
        raise NotImplementedError

    def test_devices_stream_across_pages(self, provider, sim):
        orgs = self.seed_many_devices(sim, self.many_devices)
        stream = iter(provider.iter_devices(orgs))
        first = next(stream)
        pages_for_first = self.device_page_calls(sim)
        rest = list(stream)
        assert first.external_id and first.organization_external_id
        assert len(rest) + 1 == self.many_devices
        assert len({d.external_id for d in [first, *rest]}) == self.many_devices
        assert self.device_page_calls(sim) > pages_for_first >= 1, "all pages were fetched before the first device"


class PollContract(ProviderContract):
    def seed_active_alert(self, sim) -> str:
        """Make an active alert in the simulator; return its external id."""
        raise NotImplementedError

    def seed_resolved_alert(self, sim) -> str:
        raise NotImplementedError

    def test_poll_reports_the_complete_active_set(self, provider, sim):
        active = self.seed_active_alert(sim)
        resolved = self.seed_resolved_alert(sim)
        result = provider.poll_alerts()
        assert isinstance(result, PollResult) and result.complete is True
        ids = {a.external_id for a in result.active}
        assert active in ids and resolved not in ids
        assert all(a.severity in SEVERITIES for a in result.active)


class ResetContract(ProviderContract):
    def seed_active_alert(self, sim) -> str:
        raise NotImplementedError

    def was_reset(self, sim, external_id: str) -> bool:
        raise NotImplementedError

    def missing_alert_id(self) -> str:
        return "999999"

    def test_reset_done_gone_and_refused(self, provider, sim):
        alert_id = self.seed_active_alert(sim)
        provider.reset_alert(alert_id)
        assert self.was_reset(sim, alert_id)
        provider.reset_alert(self.missing_alert_id())  # 404: already gone, not an error
        other = self.seed_active_alert(sim)
        sim.fail_next(1, 400, {"detail": "Bad request."})
        with pytest.raises(ProviderError) as info:
            provider.reset_alert(other)
        assert str(info.value)  # recorded on the alert as the reason

