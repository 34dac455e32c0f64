"""The worker exactly as the README and the startup log say: ``celery -A psa worker``, no ``-Q``.

Alerts route to ``intake``, syncs to ``sync``, notifications to ``notifications``; a worker
started without ``-Q`` used to listen on ``default`` only, so every webhook was stored, answered
202 and never processed. The settings now declare every queue, so a plain worker consumes them all.
"""

from __future__ import annotations

import os
import time

import pytest
from django.utils import timezone

from psa import celery_app, queues
from psa.tenancy import tenant_context

from .conftest import running_stack
from .flows import GenericWebhook, create_client, map_org, wait_alert, wait_alert_ticket, wait_events_settled
from .harness import wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def live_stack(live_db_url, live_redis_url):
    """This module's own stack, its worker started with no queue option at all."""
    with running_stack(live_db_url, live_redis_url, label=f"plain-{os.getpid()}", queues=None,
                       extra_env={"DJANGO_SETTINGS_MODULE": "tests.e2e.live_settings"}) as stack:
        yield stack


def test_the_worker_is_started_without_a_queue_option_and_consumes_every_queue(live):
    argv = live.worker.argv
    assert argv[1:4] == ["-A", "psa", "worker"] and "-Q" not in argv and "--queues" not in argv
    banner = live.worker.log_text()
    for queue in queues.QUEUES:
        assert f".> {queue} " in banner, f"worker does not consume {queue}:\n{banner[-3000:]}"


def test_a_generic_webhook_becomes_a_ticket(tenant):
    hook = GenericWebhook(tenant.api)
    try:
        client = create_client(tenant.api, "Acme")
        assert hook.send("trigger", "probe-1", "probe").status_code == 202
        wait_alert(tenant.api, "generic", "probe-1", state="unmapped")  # processed on the intake queue
        map_org(tenant.api, "generic", "org-1", client["id"])
        r = hook.send("trigger", "p-1", "disk-full")
        assert r.status_code == 202 and r.json()["status"] == "accepted", r.text
        made = wait_alert_ticket(tenant.api, "generic", "p-1")
        assert made["client"] == client["id"] and made["is_closed"] is False
        assert {e["status"] for e in wait_events_settled(tenant.api, "generic", 2)} == {"processed"}
    finally:
        hook.close()


def test_heartbeats_sent_to_every_queue_are_consumed_and_the_queues_read_healthy(live, tenant):
    sent_at = timezone.now()
    time.sleep(0.01)
    for queue in queues.QUEUES:  # what beat does each minute
        live.send_task(queues.HEARTBEAT_TASK, queue, to_queue=queue)

    def all_stamped():
        seen = queues.last_heartbeats()  # the worker wrote them to the shared cache (Redis)
        return seen if all(s is not None and s > sent_at for s in seen.values()) else None

    wait_until(all_stamped, 45, 0.25, "a heartbeat consumed on every queue")
    celery_app.conf.task_always_eager = False  # judge as the product does, with a broker
    try:
        with tenant_context(tenant.tenant_id):
            rows = queues.queue_health()
    finally:
        celery_app.conf.task_always_eager = True
    assert [(r["queue"], r["ok"]) for r in rows] == [(q, True) for q in queues.QUEUES], rows
