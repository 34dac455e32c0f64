"""One raw statement the ORM cannot express: ``INSERT .. ON CONFLICT .. RETURNING``.

Django's ``bulk_create(ignore_conflicts=True)`` does not tell whether the row was
inserted, and the pipeline's idempotency hangs on exactly that answer.

The statement text depends only on the model and the conflict clause, so it is built
once per process (the webhook intake runs it on every request; building it through
the field list cost more than executing it).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from django.db import connection, models


@lru_cache(maxsize=64)
def _insert_plan(model: type[models.Model], on_conflict: str, vendor: str) -> tuple[str, tuple]:
    """(sql, fields) for an insert of every concrete non-pk field of ``model``."""
    meta = model._meta
    fields = tuple(f for f in meta.concrete_fields if not f.primary_key)
    quote = connection.ops.quote_name
    cols = ", ".join(quote(f.column) for f in fields)
    sql = (
        f"INSERT INTO {quote(meta.db_table)} ({cols}) VALUES ({', '.join(['%s'] * len(fields))}) "
        f"{on_conflict} RETURNING {quote(meta.pk.column)}"
    )
    return sql, fields


def insert_returning_id(
    model: type[models.Model], values: dict[str, Any], on_conflict: str = ""
) -> int | None:
    """Insert one row of ``model`` and return its id; None when ``on_conflict`` (e.g.
    ``ON CONFLICT (a, b) DO NOTHING``) skipped it. Fields not in ``values`` get their
    Python default, as ``Model.save()`` would give them."""
    sql, fields = _insert_plan(model, on_conflict, connection.vendor)
    params: list[Any] = []
    for field in fields:
        if field.attname in values:
            value = values[field.attname]
        elif field.name in values:
            value = values[field.name]
            if isinstance(value, models.Model):
                value = value.pk
        else:
            value = field.get_default()
        params.append(field.get_db_prep_save(value, connection))
    with connection.cursor() as cur:
        cur.execute(sql, params)
        row = cur.fetchone()
    return row[0] if row else None
