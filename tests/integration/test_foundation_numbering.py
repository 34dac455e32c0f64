"""Per-tenant ticket numbers under concurrency, against PostgreSQL (each thread its own connection)."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction

from psa.tenancy import tenant_context
from tests.integration.foundation_fixtures import fast_password_hasher  # noqa: F401
from tickets.models import Board, Ticket
from tickets.services import create_ticket

THREADS = 24


class Boom(Exception):
    pass


def _run_in_threads(n: int, work) -> list:
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def target(i):
        try:
            barrier.wait(timeout=30)
            results[i] = work(i)
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            results[i] = exc
        finally:
            connection.close()  # this thread's own connection

    threads = [threading.Thread(target=target, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a ticket-creating thread hung"
    return results


@pytest.mark.django_db(transaction=True)
def test_parallel_creation_gives_unique_sequential_numbers(make_tenant):
    tenant_a, tenant_b = make_tenant().tenant, make_tenant().tenant

    def work(i):
        tenant = tenant_a if i % 4 else tenant_b  # two tenants racing at once: counters are independent
        with tenant_context(tenant):
            return create_ticket(board=Board.objects.get(name="General"), title=f"parallel {i}").number

    results = _run_in_threads(THREADS, work)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, errors
    for tenant in (tenant_a, tenant_b):
        numbers = sorted(Ticket.objects.unscoped().filter(tenant=tenant).values_list("number", flat=True))
        assert numbers == list(range(1, len(numbers) + 1)), numbers
    assert Ticket.objects.unscoped().count() == THREADS


@pytest.mark.django_db(transaction=True)
def test_rolled_back_creations_never_duplicate_a_number(make_tenant):
    tenant = make_tenant().tenant

    def work(i):
        with tenant_context(tenant):
            board = Board.objects.get(name="General")
            if i % 3 == 0:
                with transaction.atomic():
                    create_ticket(board=board, title=f"doomed {i}")
                    raise Boom  # rolled back after taking a number
            return create_ticket(board=board, title=f"kept {i}").number

    results = _run_in_threads(THREADS, work)
    assert all(isinstance(r, Boom) for r in results[::3])
    kept = [r for r in results if isinstance(r, int)]
    assert len(kept) == THREADS - len(results[::3])
    numbers = list(Ticket.objects.unscoped().filter(tenant=tenant).values_list("number", flat=True))
    assert len(numbers) == len(set(numbers)) == len(kept)
    assert sorted(numbers) == sorted(kept)
    # A rolled-back transaction also rolls back its counter step: the numbers stay dense.
    assert sorted(numbers) == list(range(1, len(kept) + 1))
    with tenant_context(tenant):
        assert create_ticket(board=Board.objects.get(name="General"), title="after").number == len(kept) + 1
