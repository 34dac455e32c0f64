"""One open ticket per (tenant, condition): decided by PostgreSQL, not by Python.

``upsert_group`` is a single ``INSERT .. ON CONFLICT (tenant_id, dedup_key) WHERE
state = 'open' DO UPDATE`` against the partial unique index ``one_open_group_per_key``.
Concurrent firings of one condition wait on the first inserter's row and take the
update branch, so 100 simultaneous deliveries make one group, one ticket and an
occurrence count of 100. Everything here runs inside the caller's transaction.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from django.db import connection
from django.utils import timezone

from alerts.models import AlertGroup

# Bump when the recipe changes: old open groups keep their keys and are never silently merged.
DEDUP_VERSION = "v1"


def dedup_key(provider: str, condition_key: str) -> str:
    digest = hashlib.sha256(f"{provider}|{condition_key}".encode()).hexdigest()
    return f"{DEDUP_VERSION}:{digest[:60]}"


@dataclass
class GroupRow:
    id: int
    ticket_id: int | None
    occurrence_count: int
    inserted: bool
    # Coalesced occurrence notes (alerts.services.occurrences) and storms (alerts.services.storm).
    noted_at: object = None
    noted_count: int = 1
    unnoted_since: object = None
    storm_id: int | None = None


def upsert_group(
    *, tenant_id: int, key: str, condition_key: str, provider: str, rule_id: int | None, at
) -> GroupRow:
    table = connection.ops.quote_name(AlertGroup._meta.db_table)
    extra = "noted_at, noted_count, unnoted_since, storm_id"
    if connection.vendor == "postgresql":
        newest, returning = "GREATEST(g.last_seen, EXCLUDED.last_seen)", "g.id, g.ticket_id, g.occurrence_count, (g.xmax = 0)"
        extra = ", ".join(f"g.{c.strip()}" for c in extra.split(","))
    else:
        # The embedded SQLite default (one writer at a time): MAX() for GREATEST, and a row that
        # was just inserted is the one with a count of 1 (an update always makes it >= 2).
        newest, returning = "MAX(g.last_seen, excluded.last_seen)", "id, ticket_id, occurrence_count, occurrence_count = 1"
    # A firing ends a flapping condition's wait to be stable (alerts.services.flapping).
    sql = f"""
        INSERT INTO {table} AS g
            (tenant_id, dedup_key, condition_key, provider, state, ticket_id, rule_id,
             occurrence_count, first_seen, last_seen, closed_at, noted_count)
        VALUES (%s, %s, %s, %s, 'open', NULL, %s, 1, %s, %s, NULL, 1)
        ON CONFLICT (tenant_id, dedup_key) WHERE state = 'open'
        DO UPDATE SET occurrence_count = g.occurrence_count + 1, last_seen = {newest}, flap_hold_at = NULL
        RETURNING {returning}, {extra}
    """
    with connection.cursor() as cur:
        cur.execute(sql, [tenant_id, key, condition_key[:500], provider, rule_id, at, at])
        gid, ticket_id, count, inserted, noted_at, noted_count, unnoted_since, storm_id = cur.fetchone()
    return GroupRow(gid, ticket_id, count, bool(inserted), noted_at, noted_count, unnoted_since, storm_id)


def close_stale_group(group_id: int, *, undo_increment: bool) -> bool:
    """Close an open group whose ticket is closed (conditional: only if still open).

    ``undo_increment`` takes back the occurrence this transaction just added to it, since the
    firing is about to be counted on the new group instead.
    """
    from django.db.models import F

    changes = {"state": "closed", "closed_at": timezone.now()}
    if undo_increment:
        changes["occurrence_count"] = F("occurrence_count") - 1
    return bool(AlertGroup.objects.filter(pk=group_id, state="open").update(**changes))


def close_groups_of_ticket(ticket_id: int) -> int:
    return AlertGroup.objects.filter(ticket_id=ticket_id, state="open").update(
        state="closed", closed_at=timezone.now()
    )
