"""Per-tenant ticket numbers: one UPSERT on a counter row.

The row lock taken by ``INSERT .. ON CONFLICT DO UPDATE`` serializes concurrent
allocators inside their transactions; a rolled-back transaction returns its
number to nobody, so numbers are unique and gap-tolerant.
"""

from django.db import connection

from tickets.models import TicketCounter


def next_ticket_number(tenant_id: int) -> int:
    table = connection.ops.quote_name(TicketCounter._meta.db_table)
    with connection.cursor() as cur:
        cur.execute(
            f"INSERT INTO {table} (tenant_id, value) VALUES (%s, 1) "
            f"ON CONFLICT (tenant_id) DO UPDATE SET value = {table}.value + 1 RETURNING value",
            [tenant_id],
        )
        return cur.fetchone()[0]
