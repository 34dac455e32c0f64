"""A short processing lease, renewed while the worker lives (a heartbeat).

A claimed inbound event belongs to its worker until ``COALESCE(heartbeat_at, claimed_at)`` is older than
the lease (PSA_INBOUND_LEASE_SECONDS, 15 s). A drain starts a ``Heartbeat`` for the events of its turn: a
thread that stamps ``heartbeat_at`` on those it still holds every quarter lease, so a turn of slow events
never loses its claim, while a killed worker's events are free again within one lease, and the sweeper
(every 5 s) wakes a drain for them: another worker has them within ~20 s.

The fence of the final write stays ``claimed_at`` (alerts.services.processing), which the heartbeat never
touches: renewing cannot make a live worker's result be refused. The thread's UPDATE skips rows locked at
that moment (it renews them at the next beat), so it never waits on the work it protects.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading

from django.conf import settings
from django.db import connection, connections
from django.utils import timezone

log = logging.getLogger(__name__)


def lease() -> dt.timedelta:
    return dt.timedelta(seconds=getattr(settings, "PSA_INBOUND_LEASE_SECONDS", 15))


def interval() -> float:
    return max(0.5, lease().total_seconds() / 4)


class Heartbeat:
    """``with Heartbeat(fence, ids) as hb: ... hb.done(id)``: renews the events still held, from a thread."""

    def __init__(self, fence: dt.datetime, event_ids):
        self.fence = fence
        self.held = set(event_ids)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="inbound-lease-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:  # noqa: PYI034
        if self.held:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def done(self, event_id: int) -> None:
        with self._lock:
            self.held.discard(event_id)

    def _run(self) -> None:
        try:
            while not self._stop.wait(interval()):
                with self._lock:
                    ids = sorted(self.held)
                if ids:
                    self.beat(ids)
        finally:
            connections.close_all()  # this thread's own connection

    def beat(self, ids: list[int]) -> int:
        from alerts.models import InboundEvent, InboundEventStatus

        table = connection.ops.quote_name(InboundEvent._meta.db_table)
        fence = InboundEvent._meta.get_field("claimed_at").get_db_prep_value(self.fence, connection)
        skip = " FOR UPDATE SKIP LOCKED" if connection.vendor == "postgresql" else ""
        try:
            with connection.cursor() as cur:
                cur.execute(
                    f"UPDATE {table} SET heartbeat_at = %s WHERE id IN (SELECT id FROM {table} WHERE id IN "
                    f"({', '.join(['%s'] * len(ids))}) AND status = %s AND claimed_at = %s{skip})",
                    [timezone.now(), *ids, InboundEventStatus.ACCEPTED, fence])
                return cur.rowcount
        except Exception:  # a missed beat is renewed at the next one (the lease is 4 beats)
            log.warning("inbound lease heartbeat failed", exc_info=True)
            connections.close_all()
            return 0
