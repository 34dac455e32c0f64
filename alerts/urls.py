from django.urls import path

from alerts.prometheus import metrics_view
from alerts.web.storms import split_storm
from alerts.webhook import webhook

urlpatterns = [
    path("webhooks/<str:provider>/<str:key>/", webhook, name="alert-webhook"),
    # Prometheus exposition for operators (Bearer $PSA_METRICS_TOKEN).
    path("metrics", metrics_view, name="prometheus-metrics"),
    # The Split button of an alert storm ticket (alerts.services.storm).
    path("alert-storms/<int:pk>/split/", split_storm, name="web-storm-split"),
]
