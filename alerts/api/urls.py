from django.urls import path
from rest_framework.routers import SimpleRouter

from . import alerts as alert_views
from . import events as event_views
from . import metrics as metric_views
from . import rules as rule_views
from . import storms as storm_views
from . import windows as window_views

router = SimpleRouter()
router.register("alerts", alert_views.AlertViewSet, basename="alert")
router.register("alert-rules", rule_views.AlertRuleViewSet, basename="alertrule")
router.register("maintenance-windows", window_views.MaintenanceWindowViewSet, basename="maintenancewindow")
router.register("alert-storms", storm_views.AlertStormViewSet, basename="alertstorm")

_events = event_views.InboundEventViewSet
urlpatterns: list = router.urls + [
    path("metrics/", metric_views.MetricsView.as_view(), name="alert-metrics"),
    path("integrations/<str:provider>/events/", _events.as_view({"get": "list"}), name="inboundevent-list"),
    path("integrations/<str:provider>/events/<int:pk>/", _events.as_view({"get": "retrieve"}), name="inboundevent-detail"),
    path("integrations/<str:provider>/events/<int:pk>/replay/", _events.as_view({"post": "replay"}),
         name="inboundevent-replay"),
]
