from rest_framework.routers import SimpleRouter

from integrations.plugins import provider_routes

from .views import SLUG_RE, IntegrationViewSet, JobViewSet, OrganizationViewSet

router = SimpleRouter()
router.register(rf"integrations/(?P<provider>{SLUG_RE})/organizations", OrganizationViewSet, basename="integration-org")
router.register("integrations", IntegrationViewSet, basename="integration")
router.register("jobs", JobViewSet, basename="job")


# Each provider app's declared API routes, under integrations/<slug>/ (e.g. Huntress routing); first,
# so a provider's own path (huntress/routing/) is never read as a router action.
urlpatterns = provider_routes(api=True) + router.urls
