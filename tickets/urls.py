from django.urls import path

from . import views

urlpatterns = [
    path("tickets/", views.ticket_list, name="web-tickets"),
    path("tickets/new/", views.ticket_new, name="web-ticket-new"),
    path("tickets/<int:pk>/", views.ticket_detail, name="web-ticket"),
    path("tickets/<int:pk>/notes/", views.ticket_add_note, name="web-ticket-note"),
    path("tickets/<int:pk>/update/", views.ticket_update, name="web-ticket-update"),
]
