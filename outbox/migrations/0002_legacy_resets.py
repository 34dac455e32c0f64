"""Resets recorded before the outbox (Alert.reset_status failed or pending) become side effects, so the
ticket, the integration card and ``side-effects/`` show them and a person can retry them."""

import datetime as dt

from django.db import migrations
from django.utils import timezone


def forward(apps, schema_editor):
    Alert = apps.get_model("alerts", "Alert")
    SideEffect = apps.get_model("outbox", "SideEffect")
    now = timezone.now()
    rows = []
    for a in Alert.objects.filter(reset_status__in=("failed", "pending")).iterator():
        rows.append(SideEffect(
            tenant_id=a.tenant_id, kind="alert.reset", key=f"alert:{a.pk}:legacy", label="Reset in the provider",
            state="failed" if a.reset_status == "failed" else "pending", attempts=1 if a.reset_status == "failed" else 0,
            last_error=a.reset_error or "", payload={"external_id": a.external_id}, ticket_id=a.ticket_id,
            alert_id=a.pk, integration_id=a.integration_id, created_at=a.reset_at or now, next_attempt_at=now,
            give_up_at=now + dt.timedelta(hours=6), done_at=now if a.reset_status == "failed" else None))
    SideEffect.objects.bulk_create(rows, batch_size=500, ignore_conflicts=True)


class Migration(migrations.Migration):
    dependencies = [("outbox", "0001_initial"), ("alerts", "0005_alert_trace_is_test")]
    operations = [migrations.RunPython(forward, migrations.RunPython.noop)]
