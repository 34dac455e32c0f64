from rest_framework.routers import SimpleRouter

from .views import SLUG_RE, IntegrationViewSet, JobViewSet, OrganizationViewSet

router = SimpleRouter()
router.register(rf"integrations/(?P<provider>{SLUG_RE})/organizations", OrganizationViewSet, basename="integration-org")
router.register("integrations", IntegrationViewSet, basename="integration")
router.register("jobs", JobViewSet, basename="job")



def _provider_routes():
    """Each provider app's declared API routes, under integrations/<slug>/ (e.g. Huntress routing)."""
    from django.urls import include, path

    from integrations import registry

    routes = []
    for cls in registry.all_providers():
        app = registry.provider_app(cls.slug)
        if app is not None and app.api_urls:
            routes.append(path(f"integrations/{cls.slug}/", include(app.api_urls)))
    return routes


# Provider routes first: a provider's own path (huntress/routing/) must not be read as a router action.
urlpatterns = _provider_routes() + router.urls
