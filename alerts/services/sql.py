"""One raw statement the ORM cannot express: ``INSERT .. ON CONFLICT .. RETURNING``.

Django's ``bulk_create(ignore_conflicts=True)`` does not tell whether the row was
inserted, and the pipeline's idempotency hangs on exactly that answer.
"""

from __future__ import annotations

from typing import Any

from django.db import connection, models


def insert_returning_id(
    model: type[models.Model], values: dict[str, Any], on_conflict: str = ""
) -> int | None:
    """Insert one row of ``model`` and return its id; None when ``on_conflict`` (e.g.
    ``ON CONFLICT (a, b) DO NOTHING``) skipped it. Fields not in ``values`` get their
    Python default, as ``Model.save()`` would give them."""
    meta = model._meta
    cols: list[str] = []
    params: list[Any] = []
    for field in meta.concrete_fields:
        if field.primary_key:
            continue
        if field.attname in values:
            value = values[field.attname]
        elif field.name in values:
            value = values[field.name]
            if isinstance(value, models.Model):
                value = value.pk
        else:
            value = field.get_default()
        cols.append(connection.ops.quote_name(field.column))
        params.append(field.get_db_prep_save(value, connection))
    table = connection.ops.quote_name(meta.db_table)
    sql = (
        f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join(['%s'] * len(cols))}) "
        f"{on_conflict} RETURNING {connection.ops.quote_name(meta.pk.column)}"
    )
    with connection.cursor() as cur:
        cur.execute(sql, params)
        row = cur.fetchone()
    return row[0] if row else None
