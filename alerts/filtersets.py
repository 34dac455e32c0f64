"""FilterSets shared by a list page and its API view, so the two filter the same way."""

from __future__ import annotations

import django_filters

from alerts.models import InboundEvent, InboundEventStatus


class InboundEventFilter(django_filters.FilterSet):
    """``integrations/{provider}/events/`` and the provider panel's event log."""

    status = django_filters.ChoiceFilter(choices=InboundEventStatus.choices)
    source = django_filters.CharFilter(field_name="source")

    class Meta:
        model = InboundEvent
        fields: list[str] = []
