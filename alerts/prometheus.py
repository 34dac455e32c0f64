"""Prometheus exposition at ``/metrics`` for operators: the pipeline across every tenant.

Read at scrape time from the rows the pipeline keeps (so every gunicorn and Celery process agrees,
with no multiprocess bookkeeping), through ``prometheus_client``'s collector API and exposition:
- ``psa_inbound_events_last_24h{provider,status}``: webhook intake by status over the last 24 hours;
- ``psa_processing_latency_seconds``: received -> processed, a histogram of the events finished in the
  last LATENCY_WINDOW;
- ``psa_queue_lag_seconds{provider}`` and ``psa_intake_backlog{provider}``: the oldest unprocessed event's
  age and how many wait;
- ``psa_outbox_depth{state}``: side effects waiting (pending) or failed (integrations.services.health);
- ``psa_integrations_quiet{provider}``: integrations whose quiet-provider alarm is raised.

Readable only with ``Authorization: Bearer $PSA_METRICS_TOKEN``; refused (403) while the variable is unset.
No tenant names or ids appear in the labels.
"""

from __future__ import annotations

import datetime as dt
import hmac
import os

from django.conf import settings
from django.db.models import Count, Min, Q
from django.db.models.functions import Coalesce
from django.http import HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily

LATENCY_WINDOW = dt.timedelta(minutes=15)
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class PipelineCollector:
    """Collects the figures above on each scrape (a handful of grouped queries)."""

    def collect(self):
        from alerts.models import InboundEvent, InboundEventStatus

        now = timezone.now()
        events = InboundEvent.objects.unscoped()

        intake = GaugeMetricFamily("psa_inbound_events_last_24h", "Inbound webhook events of the last 24 hours "
                                   "by provider and status", labels=["provider", "status"])
        rows = (events.filter(received_at__gte=now - dt.timedelta(hours=24), source="webhook")
                .values("provider", "status").annotate(n=Count("id")).order_by("provider", "status"))
        for r in rows:
            intake.add_metric([r["provider"], r["status"]], r["n"])
        yield intake

        yield self._latency(events, now)

        lag = GaugeMetricFamily("psa_queue_lag_seconds", "Age of the oldest unprocessed inbound event",
                                labels=["provider"])
        backlog = GaugeMetricFamily("psa_intake_backlog", "Inbound events waiting to be processed",
                                    labels=["provider"])
        rows = (events.filter(status=InboundEventStatus.ACCEPTED)
                .annotate(waiting_since=Coalesce("replay_requested_at", "received_at"))
                .values("provider").annotate(oldest=Min("waiting_since"), n=Count("id")).order_by("provider"))
        for r in rows:
            lag.add_metric([r["provider"]], max(0.0, (now - r["oldest"]).total_seconds()))
            backlog.add_metric([r["provider"]], r["n"])
        yield lag
        yield backlog

        from integrations.services.health import side_effect_depth

        depth = GaugeMetricFamily("psa_outbox_depth", "Side effects waiting for a retry (pending) or failed",
                                  labels=["state"])
        for state, n in sorted(side_effect_depth().items()):
            depth.add_metric([state], n)
        yield depth

        from integrations.models import Integration

        quiet = GaugeMetricFamily("psa_integrations_quiet", "Integrations whose quiet-provider alarm is raised",
                                  labels=["provider"])
        rows = (Integration.objects.unscoped().filter(provider_state__quiet_alarm__active=True)
                .values("provider").annotate(n=Count("id")).order_by("provider"))
        for r in rows:
            quiet.add_metric([r["provider"]], r["n"])
        yield quiet

    def _latency(self, events, now):
        from alerts.models import InboundEventStatus

        done = events.filter(
            status__in=(InboundEventStatus.PROCESSED, InboundEventStatus.FAILED),
            received_at__gte=now - LATENCY_WINDOW - dt.timedelta(hours=1),  # the index bound
            processed_at__gte=now - LATENCY_WINDOW,
        )
        from django.db.models import DurationField, ExpressionWrapper, F, Sum

        took = ExpressionWrapper(F("processed_at") - F("received_at"), output_field=DurationField())
        aggregates = {f"le_{i}": Count("id", filter=Q(processed_at__lte=F("received_at") + dt.timedelta(seconds=b)))
                      for i, b in enumerate(LATENCY_BUCKETS)}
        row = done.aggregate(n=Count("id"), total=Sum(took), **aggregates)
        buckets = [(str(b), row[f"le_{i}"] or 0) for i, b in enumerate(LATENCY_BUCKETS)]
        buckets.append(("+Inf", row["n"] or 0))
        total = row["total"].total_seconds() if row["total"] is not None else 0.0
        return HistogramMetricFamily("psa_processing_latency_seconds",
                                     f"Inbound event received -> processed, events finished in the last "
                                     f"{int(LATENCY_WINDOW.total_seconds() // 60)} minutes",
                                     buckets=buckets, sum_value=total)


def registry() -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(PipelineCollector())
    return reg


def configured_token() -> str:
    return getattr(settings, "PSA_METRICS_TOKEN", None) or os.environ.get("PSA_METRICS_TOKEN", "")


@require_GET
def metrics_view(request):
    token = configured_token()
    if not token:
        return JsonResponse({"detail": "Metrics are disabled: set PSA_METRICS_TOKEN to read them."}, status=403)
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if not header.startswith("Bearer "):
        response = JsonResponse({"detail": "Authorization: Bearer <PSA_METRICS_TOKEN> required."}, status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    if not hmac.compare_digest(header[len("Bearer "):].strip().encode(), token.encode()):
        return JsonResponse({"detail": "Wrong metrics token."}, status=403)
    return HttpResponse(generate_latest(registry()), content_type=CONTENT_TYPE_LATEST)
