"""Web routes of Settings > Integrations > RMM (the webhook intake route lives in alerts)."""

from django.urls import path

from integrations.plugins import provider_routes

from .web import connection, fieldmap_view, observability, operations, overview

P = "settings/integrations/rmm/<slug:provider>/"

urlpatterns = [
    path("settings/", overview.settings_home, name="settings-home"),
    path("settings/integrations/", overview.settings_home),
    path("settings/integrations/rmm/", overview.rmm_tab, name="settings-rmm"),
    path(P, overview.provider_panel, name="settings-rmm-provider"),
    path(P + "connection/", connection.save_connection, name="settings-rmm-connection"),
    path(P + "connection/test/", connection.test_connection, name="settings-rmm-test"),
    path(P + "webhook/secret/", connection.webhook_secret, name="settings-rmm-webhook-secret"),
    path(P + "webhook/rotate/", connection.rotate_secret, name="settings-rmm-webhook-rotate"),
    path(P + "polling/", connection.save_polling, name="settings-rmm-polling"),
    path(P + "polling/run/", operations.polling_run, name="settings-rmm-poll-run"),
    path(P + "organizations/", operations.organizations_card, name="settings-rmm-orgs"),
    path(P + "organizations/sync/", operations.organizations_sync, name="settings-rmm-orgs-sync"),
    path(P + "organizations/automap/", operations.organizations_automap, name="settings-rmm-orgs-automap"),
    path(P + "organizations/<int:org_id>/", operations.organization_map, name="settings-rmm-org-map"),
    path(P + "devices/sync/", operations.devices_sync, name="settings-rmm-devices-sync"),
    path(P + "field-mapping/", fieldmap_view.save_mapping, name="settings-rmm-field-mapping"),
    path(P + "field-mapping/preview/", fieldmap_view.preview_mapping, name="settings-rmm-field-mapping-preview"),
    path(P + "jobs/<int:job_id>/", operations.job_progress, name="settings-rmm-job"),
    path(P + "jobs/start/<str:kind>/", operations.job_start, name="settings-rmm-job-start"),
    path(P + "health/", observability.health_card, name="settings-rmm-health"),
    path(P + "test-alert/", observability.test_alert_card, name="settings-rmm-test-alert"),
    path(P + "test-alert/send/", observability.test_alert_send, name="settings-rmm-test-alert-send"),
    path(P + "test-alert/close/", observability.test_alert_close, name="settings-rmm-test-alert-close"),
]


# Each provider app's declared web routes, under /integrations/<slug>/ (e.g. an OAuth callback).
urlpatterns += provider_routes(api=False)

# The asset page's remote access button (a fresh link from the provider each time).
from .web.remote_view import remote_urls

urlpatterns += remote_urls
