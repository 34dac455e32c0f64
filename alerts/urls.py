from django.urls import path

from alerts.prometheus import metrics_view
from alerts.webhook import webhook

urlpatterns = [
    path("webhooks/<str:provider>/<str:key>/", webhook, name="alert-webhook"),
    # Prometheus exposition for operators (Bearer $PSA_METRICS_TOKEN).
    path("metrics", metrics_view, name="prometheus-metrics"),
]
