"""Mounted by each incident provider's app at /integrations/<slug>/ (its ``web_urls``)."""

from django.urls import path

from . import views

urlpatterns = [
    path("incidents/status-card/", views.status_card, name="incidents-status-card"),
    path("incidents/routing/", views.save_routing, name="incidents-routing"),
    path("incidents/poll/", views.poll_now, name="incidents-poll"),
    path("incidents/test/", views.send_test_incident, name="incidents-test"),
    path("incidents/test/<int:pk>/close/", views.close_test_incident, name="incidents-test-close"),
]
