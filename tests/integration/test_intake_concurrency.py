"""Real concurrency against PostgreSQL: many simultaneous deliveries through the webhook view
(each thread its own connection), and many simultaneous calls of the service."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from django.db import connection
from django.test import Client as HttpClient

from alerts.models import Alert, AlertGroup, InboundEvent
from alerts.services.pipeline import ingest_normalized
from psa.tenancy import tenant_context
from tests.fakes import alert as fake_alert
from tests.integration.pipeline_support import setup_fake, trigger
from tickets.models import Ticket, TicketNote

pytestmark = pytest.mark.django_db(transaction=True)

N = 50


def run_at_once(n: int, work: Callable[[int], object]) -> list:
    """Run ``work(i)`` in n threads released together; each thread uses (and closes) its own connection."""
    barrier = threading.Barrier(n)
    results: list = [None] * n
    errors: list = []

    def target(i: int) -> None:
        try:
            barrier.wait(timeout=60)
            results[i] = work(i)
        except Exception as exc:  # surfaced below with the thread number
            errors.append((i, repr(exc)))
        finally:
            connection.close()

    threads = [threading.Thread(target=target, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    assert not errors, errors[:5]
    return results


def test_many_firings_of_one_condition_through_the_webhook_make_one_ticket(tenant_a, fake_provider):
    fx = setup_fake(tenant_a.tenant)
    codes = run_at_once(
        N, lambda i: fx.post(trigger(f"alert-{i}", condition="disk-c"), http=HttpClient()).status_code
    )
    assert codes == [202] * N
    events = InboundEvent.objects.unscoped().filter(integration=fx.integration)
    assert events.count() == N
    assert set(events.values_list("status", flat=True)) == {"processed"}
    with tenant_context(fx.tenant):
        (ticket,) = Ticket.objects.all()
        (group,) = AlertGroup.objects.all()
        assert group.occurrence_count == N and group.ticket_id == ticket.pk and group.state == "open"
        assert ticket.occurrence_count == N
        assert Alert.objects.filter(ticket=ticket, state="active").count() == N
        # Notes coalesce (alerts.services.occurrences): the first repeat is told, the rest wait for the summary.
        assert TicketNote.objects.filter(ticket=ticket, body__startswith="Alert fired again").count() == 1
        assert group.unnoted_since is not None and group.noted_count == 2
    actions = sorted(a for e in events for a in e.result["actions"])
    assert actions == ["occurrence"] * (N - 1) + ["ticket_created"]


def test_many_identical_deliveries_are_processed_once(tenant_a, fake_provider):
    fx = setup_fake(tenant_a.tenant)
    payload = trigger("alert-1", delivery_id="delivery-1")
    answers = run_at_once(N, lambda i: fx.post(payload, http=HttpClient()))
    assert [a.status_code for a in answers] == [202] * N
    assert sum(1 for a in answers if a.json().get("duplicate")) == N - 1
    events = InboundEvent.objects.unscoped().filter(integration=fx.integration)
    (original,) = events.filter(status="processed")
    assert events.filter(status="duplicate", duplicate_of=original).count() == N - 1
    assert original.attempts == 1
    with tenant_context(fx.tenant):
        assert Alert.objects.count() == 1
        (ticket,) = Ticket.objects.all()
        assert ticket.occurrence_count == 1


def test_service_level_concurrency_on_ingest_normalized(tenant_a, fake_provider):
    fx = setup_fake(tenant_a.tenant)

    def work(i: int):
        # Half the threads deliver an alert id another thread also delivers: those are redeliveries.
        na = fake_alert(f"svc-{i % (N // 2)}", "o1", condition_key="cpu-high", severity="critical")
        return ingest_normalized(fx.integration, na, source="poll").outcome["action"]

    actions = run_at_once(N, work)
    assert sorted(set(actions)) == ["occurrence", "redelivery", "ticket_created"]
    assert actions.count("ticket_created") == 1
    assert actions.count("redelivery") == N // 2
    with tenant_context(fx.tenant):
        (ticket,) = Ticket.objects.all()
        assert ticket.occurrence_count == N // 2
        assert AlertGroup.objects.get().occurrence_count == N // 2
        assert Alert.objects.count() == N // 2


def test_concurrent_first_alerts_of_a_tenant_share_one_catch_all(tenant_a, fake_provider):
    from alerts.models import AlertRule

    fx = setup_fake(tenant_a.tenant)
    run_at_once(
        10,
        lambda i: ingest_normalized(
            fx.integration, fake_alert(f"c-{i}", "o1", condition_key=f"c-{i}"), source="webhook"
        ),
    )
    with tenant_context(fx.tenant):
        assert AlertRule.objects.filter(is_catch_all=True).count() == 1
        assert Ticket.objects.count() == 10
