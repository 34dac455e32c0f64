"""/api/v1/: each app contributes its own ``api/urls.py``."""

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from . import core, invitations

router = SimpleRouter()
router.register("clients", core.ClientViewSet, basename="client")
router.register("client-sites", core.ClientSiteViewSet, basename="clientsite")
router.register("contacts", core.ContactViewSet, basename="contact")
router.register("users", core.UserViewSet, basename="user")
router.register("notifications", core.NotificationViewSet, basename="notification")
router.register("invitations", invitations.InvitationViewSet, basename="invitation")

urlpatterns = [
    # Before the router's invitations/{pk}/ (it would take "accept" for an id).
    path("invitations/accept/", invitations.InvitationAcceptView.as_view(), name="invitation-accept-api"),
    *router.urls,
    path("", include("tickets.api.urls")),
    path("", include("assets.api.urls")),
    path("", include("alerts.api.urls")),
    path("", include("integrations.api.urls")),
    path("", include("outbox.api")),
]
