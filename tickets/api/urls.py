from django.urls import path
from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter()
router.register("boards", views.BoardViewSet, basename="board")
router.register("statuses", views.StatusViewSet, basename="status")
router.register("priorities", views.PriorityViewSet, basename="priority")
router.register("categories", views.CategoryViewSet, basename="category")
router.register("tickets", views.TicketViewSet, basename="ticket")

notes = views.TicketNoteViewSet.as_view({"get": "list", "post": "create"})
time_entries = views.TimeEntryViewSet.as_view({"get": "list", "post": "create"})

urlpatterns = router.urls + [
    path("tickets/<int:ticket_pk>/notes/", notes, name="ticket-notes"),
    path("tickets/<int:ticket_pk>/time-entries/", time_entries, name="ticket-time-entries"),
]
