"""Database adaptation the ORM does not do: datetimes whose UTC offset PostgreSQL cannot read.

Python accepts offsets up to ±23:59 and an ISO 8601 filter or a provider's timestamp may carry
one ("2020-01-01T00:00:00+16:00"); PostgreSQL rejects any offset past ±15:59 ("time zone
displacement out of range": a 500 on the API, a failed pipeline run). The instant is well
defined, so such a value is sent as UTC: every query and insert, whichever app built it.
"""

from __future__ import annotations

import datetime as dt

PG_MAX_OFFSET = dt.timedelta(hours=15, minutes=59, seconds=59)


def _utc_dumper():
    from psycopg.types.datetime import DatetimeDumper

    class UTCWhenOutOfRangeDumper(DatetimeDumper):
        def dump(self, obj: dt.datetime):
            offset = obj.utcoffset()
            if offset is not None and abs(offset) > PG_MAX_OFFSET:
                obj = obj.astimezone(dt.UTC)
            return super().dump(obj)

    return UTCWhenOutOfRangeDumper


def register_datetime_dumper(sender, connection, **kwargs) -> None:
    """``connection_created`` receiver (psa.apps): PostgreSQL connections (psycopg 3) only."""
    if connection.vendor != "postgresql":
        return
    adapters = getattr(connection.connection, "adapters", None)
    if adapters is not None:  # psycopg 3; text format is what Django's client-side cursors send
        adapters.register_dumper(dt.datetime, _utc_dumper())
