"""Mounted by each incident provider's app at /api/v1/integrations/<slug>/ (its ``api_urls``)."""

from django.urls import path

from . import views

incidents = views.IncidentViewSet.as_view({"get": "list"})
incident = views.IncidentViewSet.as_view({"get": "retrieve"})
escalations = views.EscalationViewSet.as_view({"get": "list"})
escalation = views.EscalationViewSet.as_view({"get": "retrieve"})

urlpatterns = [
    path("routing/", views.RoutingView.as_view()),
    path("status/", views.StatusView.as_view()),
    path("test-incident/", views.TestIncidentView.as_view()),
    path("test-incident/<int:pk>/close/", views.TestIncidentCloseView.as_view()),
    path("incidents/", incidents),
    path("incidents/<int:pk>/", incident),
    path("escalations/", escalations),
    path("escalations/<int:pk>/", escalation),
]
