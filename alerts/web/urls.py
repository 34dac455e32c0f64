"""Web routes: alert rules, maintenance windows and a provider's inbound event log."""

from django.urls import path

from . import alerts, events, metrics, rules, windows

EV = "settings/integrations/rmm/<slug:provider>/events/"

urlpatterns = [
    path("alerts/<int:pk>/", alerts.alert_detail, name="web-alert"),
    path("reports/alerts/", metrics.metrics_page, name="web-alert-metrics"),
    path("settings/alert-rules/", rules.rule_list, name="settings-alert-rules"),
    path("settings/alert-rules/new/", rules.rule_create, name="settings-alert-rule-new"),
    path("settings/alert-rules/dry-run/", rules.rule_dry_run, name="settings-alert-rule-dry-run"),
    path("settings/alert-rules/<int:pk>/", rules.rule_edit, name="settings-alert-rule"),
    path("settings/alert-rules/<int:pk>/toggle/", rules.rule_toggle, name="settings-alert-rule-toggle"),
    path("settings/alert-rules/<int:pk>/move/<str:direction>/", rules.rule_move, name="settings-alert-rule-move"),
    path("settings/alert-rules/<int:pk>/delete/", rules.rule_delete, name="settings-alert-rule-delete"),
    path("settings/maintenance-windows/", windows.window_list, name="settings-windows"),
    path("settings/maintenance-windows/new/", windows.window_create, name="settings-window-new"),
    path("settings/maintenance-windows/dry-run/", windows.window_dry_run, name="settings-window-dry-run"),
    path("settings/maintenance-windows/<int:pk>/", windows.window_edit, name="settings-window"),
    path("settings/maintenance-windows/<int:pk>/delete/", windows.window_delete, name="settings-window-delete"),
    path(EV, events.event_list, name="settings-rmm-events"),
    path(EV + "<int:event_id>/", events.event_detail, name="settings-rmm-event"),
    path(EV + "<int:event_id>/replay/", events.event_replay, name="settings-rmm-event-replay"),
]
