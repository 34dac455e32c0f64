"""Ticket filters. Related ids are plain numbers: filtering on another tenant's id just
finds nothing (no 'invalid choice' oracle)."""

import django_filters
from django.db.models import Q

from tickets.models import Ticket


class TicketFilter(django_filters.FilterSet):
    board = django_filters.NumberFilter(field_name="board_id")
    status = django_filters.NumberFilter(field_name="status_id")
    client = django_filters.NumberFilter(field_name="client_id")
    asset = django_filters.NumberFilter(field_name="asset_id")
    priority = django_filters.NumberFilter(field_name="priority_id")
    category = django_filters.NumberFilter(field_name="category_id")
    assignee = django_filters.NumberFilter(field_name="assignee_id")
    is_closed = django_filters.BooleanFilter(field_name="status__is_closed")
    source = django_filters.ChoiceFilter(choices=Ticket._meta.get_field("source").choices)
    q = django_filters.CharFilter(method="search")
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Ticket
        fields: list[str] = []

    def search(self, queryset, name, value):
        value = value.strip()
        cond = Q(title__icontains=value)
        digits = value.lstrip("#")
        if digits.isdigit():
            cond |= Q(number=int(digits))
        return queryset.filter(cond)
