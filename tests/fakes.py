"""A configurable in-memory provider for tests (slug ``fake``).

Use the ``fake_provider`` fixture (tests/conftest.py): it registers a fresh subclass
for the test and yields it; configure it through ``fake_provider.state``::

    fake_provider.state.orgs = [ExternalOrg("o1", "Acme")]
    fake_provider.state.devices = lambda: (device(i) for i in range(5000))   # streamed
    fake_provider.state.poll_result = PollResult(active=[...], complete=True)
    fake_provider.state.reset_failures = {"alert-1": Unavailable("down")}
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from integrations.base import (
    Capabilities,
    CredentialField,
    CredentialSet,
    Provider,
    SettingField,
    WebhookRequest,
)
from integrations.errors import ProviderError
from integrations.records import (
    AlertEventKind,
    ConnectionResult,
    DeviceRecord,
    ExternalOrg,
    NormalizedAlert,
    PollResult,
    WebhookEnvelope,
)


@dataclass
class FakeState:
    orgs: list[ExternalOrg] = field(default_factory=list)
    # A list, or a zero-argument callable returning a fresh iterator (for large, lazily made sets).
    devices: list[DeviceRecord] | Callable[[], Iterable[DeviceRecord]] = field(default_factory=list)
    poll_result: PollResult = field(default_factory=lambda: PollResult(active=[], complete=True))
    connection: ConnectionResult = field(default_factory=lambda: ConnectionResult(True, "OK", account_name="Fake MSP"))
    # Raise these instead of answering (set to an exception instance).
    connection_error: Exception | None = None
    orgs_error: Exception | None = None
    devices_error: Exception | None = None
    poll_error: Exception | None = None
    # external alert id -> exception raised by reset_alert
    reset_failures: dict[str, Exception] = field(default_factory=dict)
    # False: behave like a sloppy provider that returns devices of organizations nobody asked for.
    filter_orgs: bool = True
    # Concurrency tests: poll_alerts sets ``poll_entered`` then waits for ``poll_gate`` (when set).
    poll_gate: threading.Event | None = None
    poll_entered: threading.Event = field(default_factory=threading.Event)
    # What the framework asked for
    calls: dict[str, int] = field(default_factory=dict)
    requested_orgs: list[set[str]] = field(default_factory=list)
    poll_cursors: list[str | None] = field(default_factory=list)
    resets: list[str] = field(default_factory=list)
    closed: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, name: str) -> None:
        with self.lock:
            self.calls[name] = self.calls.get(name, 0) + 1


def device(external_id: str, org: str, **kw: Any) -> DeviceRecord:
    return DeviceRecord(external_id=external_id, organization_external_id=org, name=kw.pop("name", external_id), **kw)


def alert(external_id: str, org: str | None = "o1", event: str = AlertEventKind.TRIGGERED, **kw: Any) -> NormalizedAlert:
    return NormalizedAlert(
        provider="fake", external_id=external_id, condition_key=kw.pop("condition_key", f"cond-{external_id}"),
        event=event, organization_external_id=org, title=kw.pop("title", f"Alert {external_id}"), **kw,
    )


class FakeProvider(Provider):
    slug = "fake"
    name = "Fake RMM"
    capabilities = Capabilities(device_sync=True, webhooks=True, polling=True, reset_on_close=True, software=True)
    credential_fields = (
        CredentialField("api_key", "API key"),
        CredentialField("username", "Username", secret=False, required=False),
        CredentialField("password", "Password", required=False),
    )
    credential_sets = (CredentialSet("api_key", ("api_key",)), CredentialSet("login", ("username", "password")))
    poll_interval_bounds = (1, 60)
    default_poll_interval_minutes = 5
    settings_fields = (
        SettingField("note", "Note", "text", default=""),
        SettingField("x", "A number", "int", default=0, min_value=0, max_value=100),
    )
    state: ClassVar[FakeState]

    def test_connection(self) -> ConnectionResult:
        self.state.count("test_connection")
        self.credentials  # noqa: B018  (a real provider reads them; undecryptable ones raise here)
        if self.state.connection_error:
            raise self.state.connection_error
        return self.state.connection

    def list_organizations(self) -> Iterator[ExternalOrg]:
        self.state.count("list_organizations")
        if self.state.orgs_error:
            raise self.state.orgs_error
        yield from list(self.state.orgs)

    def iter_devices(self, organization_external_ids: set[str]) -> Iterator[DeviceRecord]:
        self.state.count("iter_devices")
        self.state.requested_orgs.append(set(organization_external_ids))
        source = self.state.devices() if callable(self.state.devices) else list(self.state.devices)
        for i, d in enumerate(source):
            if self.state.devices_error and i == 3:
                raise self.state.devices_error
            if not self.state.filter_orgs or d.organization_external_id in organization_external_ids:
                yield d
        if self.state.devices_error:
            raise self.state.devices_error

    def inspect_webhook(self, request: WebhookRequest) -> WebhookEnvelope:
        from integrations.errors import WebhookParseError

        try:
            data = json.loads(request.body)
        except ValueError:
            raise WebhookParseError("Body is not JSON.") from None
        return WebhookEnvelope(delivery_id=data.get("delivery_id"), summary=str(data.get("title", ""))[:100])

    def parse_webhook(self, request: WebhookRequest) -> list[NormalizedAlert]:
        data = json.loads(request.body)
        event = AlertEventKind.RESOLVED if data.get("event") == "resolve" else AlertEventKind.TRIGGERED
        return [alert(str(data["alert_id"]), data.get("org"), event, title=str(data.get("title", "")),
                      severity=str(data.get("severity", "medium")), device_external_id=data.get("device"),
                      condition_key=str(data.get("condition", data["alert_id"])))]

    def poll_alerts(self, cursor: str | None = None) -> PollResult:
        self.state.count("poll_alerts")
        self.state.poll_cursors.append(cursor)
        self.state.poll_entered.set()
        if self.state.poll_gate is not None:
            self.state.poll_gate.wait(timeout=30)
        if self.state.poll_error:
            raise self.state.poll_error
        return self.state.poll_result

    def reset_alert(self, external_id: str) -> None:
        self.state.count("reset_alert")
        with self.state.lock:
            self.state.resets.append(external_id)
        failure = self.state.reset_failures.get(external_id)
        if failure is not None:
            raise failure

    def webhook_card(self, url: str, secret: str) -> dict[str, Any]:
        return {"payload_template": '{"alert_id": "{{id}}", "event": "trigger"}', "method": "POST"}

    def close(self) -> None:
        self.state.closed += 1


def make_fake_provider() -> type[FakeProvider]:
    """A fresh subclass with its own state, so tests never share configuration."""
    return type("FakeProvider", (FakeProvider,), {"state": FakeState()})


__all__ = ["FakeProvider", "FakeState", "ProviderError", "alert", "device", "make_fake_provider"]
