from __future__ import annotations

import django_filters
from django.db import transaction
from django.db.models import Q
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, viewsets
from rest_framework import status as http
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from psa.api.permissions import AdminOrReadOnly, IsTenantMember
from psa.api.viewsets import TenantListCreateViewSet, TenantViewSetMixin
from tickets import services
from tickets.models import Board, Category, Priority, Status, Ticket, TicketNote, TimeEntry

from . import serializers as s
from .filtersets import TicketFilter


class BoardViewSet(TenantListCreateViewSet):
    serializer_class = s.BoardSerializer
    permission_classes = [AdminOrReadOnly]

    def queryset_for_tenant(self):
        return Board.objects.all()


class StatusFilter(django_filters.FilterSet):
    # Plain numbers (no "invalid choice" answer that would reveal another tenant's ids).
    board = django_filters.NumberFilter(field_name="board_id")
    shared = django_filters.BooleanFilter(field_name="board", lookup_expr="isnull")
    is_closed = django_filters.BooleanFilter()
    for_board = django_filters.NumberFilter(method="usable_on", label="Statuses usable on this board (its own + shared)")

    class Meta:
        model = Status
        fields: list[str] = []


    def usable_on(self, qs, name, value):
        return qs.filter(Q(board_id=value) | Q(board__isnull=True))


class StatusViewSet(TenantListCreateViewSet):
    serializer_class = s.StatusSerializer
    permission_classes = [AdminOrReadOnly]
    filterset_class = StatusFilter

    def queryset_for_tenant(self):
        return Status.objects.all()


class PriorityViewSet(TenantListCreateViewSet):
    serializer_class = s.PrioritySerializer
    permission_classes = [AdminOrReadOnly]

    def queryset_for_tenant(self):
        return Priority.objects.all()


class CategoryViewSet(TenantListCreateViewSet):
    serializer_class = s.CategorySerializer
    permission_classes = [AdminOrReadOnly]

    def queryset_for_tenant(self):
        return Category.objects.all()


def _raise(exc: services.TicketError):
    raise ValidationError({exc.field: [str(exc)]})


class TicketViewSet(TenantViewSetMixin, mixins.ListModelMixin, mixins.CreateModelMixin, mixins.RetrieveModelMixin,
                    mixins.UpdateModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet):
    serializer_class = s.TicketSerializer
    permission_classes = [IsTenantMember]
    filterset_class = TicketFilter
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def queryset_for_tenant(self):
        from django.db.models import Max, Min

        return (Ticket.objects.select_related("status").prefetch_related("relations")
                .annotate(first_seen=Min("alerts__first_seen"), last_seen=Max("alerts__last_seen"))
                .order_by("-created_at", "-id"))

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        board = data.pop("board")
        status = data.pop("status", None)
        title = data.pop("title")
        try:
            serializer.instance = services.create_ticket(actor=self.request.user, board=board, status=status, title=title, **data)
        except services.TicketError as exc:
            _raise(exc)

    def perform_update(self, serializer):
        try:
            serializer.instance = services.update_ticket(
                serializer.instance, actor=self.request.user, changes=dict(serializer.validated_data)
            )
        except services.TicketError as exc:
            _raise(exc)

    def destroy(self, request, *args, **kwargs):
        from psa.api.permissions import membership_of

        if not membership_of(request).is_admin:
            return Response({"detail": "Only tenant admins can delete tickets."}, status=http.HTTP_403_FORBIDDEN)
        return super().destroy(request, *args, **kwargs)

    @extend_schema(responses=s.TicketActivitySerializer(many=True))
    @action(detail=True, methods=["get"], pagination_class=None)  # the whole activity, not a page
    def activity(self, request, pk=None):
        ticket = self.get_object()
        rows = ticket.activities.all().order_by("created_at", "id")
        return Response(s.TicketActivitySerializer(rows, many=True).data)


class _TicketChildViewSet(TenantListCreateViewSet):
    """Rows under /tickets/{ticket_pk}/...; the parent is looked up in the tenant first (404 otherwise)."""

    permission_classes = [IsTenantMember]

    def resolve_parents(self) -> None:
        self.get_ticket()

    def get_ticket(self) -> Ticket:
        if not hasattr(self, "_ticket"):
            self._ticket = get_object_or_404(Ticket.objects.all(), pk=self.kwargs["ticket_pk"])
        return self._ticket


class TicketNoteViewSet(_TicketChildViewSet):
    serializer_class = s.TicketNoteSerializer

    def queryset_for_tenant(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation: no ticket in the URL
            return TicketNote.objects.none()
        return TicketNote.objects.filter(ticket=self.get_ticket()).order_by("created_at", "id")

    def perform_create(self, serializer):
        try:
            serializer.instance = services.add_note(
                self.get_ticket(), body=serializer.validated_data["body"],
                kind=serializer.validated_data.get("kind", "internal"), author=self.request.user,
            )
        except services.TicketError as exc:
            _raise(exc)


class TimeEntryViewSet(_TicketChildViewSet):
    serializer_class = s.TimeEntrySerializer

    def queryset_for_tenant(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation: no ticket in the URL
            return TimeEntry.objects.none()
        return TimeEntry.objects.filter(ticket=self.get_ticket()).order_by("created_at", "id")

    def perform_create(self, serializer):
        with transaction.atomic():
            serializer.instance = services.add_time_entry(
                self.get_ticket(), user=self.request.user, minutes=serializer.validated_data["minutes"],
                note=serializer.validated_data.get("note", ""),
            )
