from django.urls import path
from rest_framework.routers import SimpleRouter

from integrations.plugins import provider_routes

from . import observability
from .views import SLUG_RE, IntegrationViewSet, JobViewSet, OrganizationViewSet

router = SimpleRouter()
router.register(rf"integrations/(?P<provider>{SLUG_RE})/organizations", OrganizationViewSet, basename="integration-org")
router.register("integrations", IntegrationViewSet, basename="integration")
router.register("jobs", JobViewSet, basename="job")


# Health and the test alert: the framework's own, for every provider.
_P = "integrations/<str:provider>/"
observability_urls = [
    path(_P + "health/", observability.HealthView.as_view(), name="integration-health"),
    path(_P + "test-alert/", observability.TestAlertView.as_view(), name="integration-test-alert"),
    path(_P + "test-alert/close/", observability.TestAlertCloseView.as_view(), name="integration-test-alert-close"),
]


# Each provider app's declared API routes, under integrations/<slug>/ (e.g. Huntress routing); first,
# so a provider's own path (huntress/routing/) is never read as a router action.
urlpatterns = provider_routes(api=True) + observability_urls + router.urls

# Remote access to an asset through the provider managing it (a fresh link each time, never stored).
from .remote import remote_urls

urlpatterns += remote_urls
