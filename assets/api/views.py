import re

import django_filters
from django.db.models import Q
from django.http import QueryDict
from drf_spectacular.utils import extend_schema
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from assets.models import Asset, patch_counts
from psa.api.permissions import IsTenantMember
from psa.api.viewsets import TenantReadOnlyViewSet

from .serializers import AssetSerializer, PatchSerializer, SoftwareSerializer


class AssetFilter(django_filters.FilterSet):
    client = django_filters.NumberFilter(field_name="client_id")
    site = django_filters.NumberFilter(field_name="site_id")
    provider = django_filters.CharFilter(method="by_provider")
    q = django_filters.CharFilter(method="search")
    asset_type = django_filters.CharFilter()
    status = django_filters.CharFilter()
    retired = django_filters.BooleanFilter(field_name="retired_at", lookup_expr="isnull", exclude=True)

    class Meta:
        model = Asset
        fields: list[str] = []

    def filter_queryset(self, queryset):
        """Declared filters, then the named attributes: ``?attr.<name>=<value>`` (repeatable names)
        or ``?attribute=<name>:<value>``; a case-insensitive exact match on the value as text."""
        queryset = super().filter_queryset(queryset)
        for name, value in attribute_filters(self.data):
            queryset = queryset.filter(**{f"attributes__{name}__iexact": value})
        return queryset

    def by_provider(self, qs, name, value):
        return qs.filter(external_ids__provider=value).distinct()

    def search(self, qs, name, value):
        return qs.filter(Q(name__icontains=value) | Q(hostname__icontains=value) | Q(serial_number__icontains=value))


# Attribute names as the field mapping allows them (never "__", Django's lookup separator).
ATTRIBUTE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,49}$")


def attribute_filters(data) -> list[tuple[str, str]]:
    pairs = [(key[len("attr."):], data.get(key)) for key in data if key.startswith("attr.")]
    if isinstance(data, QueryDict):
        raws = data.getlist("attribute")
    else:
        raws = [data["attribute"]] if data.get("attribute") else []
    for raw in raws:
        name, sep, value = str(raw).partition(":")
        if not sep:
            raise ValidationError({"attribute": ["Use attribute=<name>:<value>."]})
        pairs.append((name, value))
    for name, _ in pairs:
        if not ATTRIBUTE_NAME.match(name) or "__" in name:
            raise ValidationError({f"attr.{name}": ["Not an attribute name (lower-case letters, digits, _)."]})
    return [(name, str(value)) for name, value in pairs]


class AssetViewSet(TenantReadOnlyViewSet):
    serializer_class = AssetSerializer
    permission_classes = [IsTenantMember]
    filterset_class = AssetFilter

    def queryset_for_tenant(self):
        return Asset.objects.prefetch_related("external_ids").order_by("name", "id")

    def list(self, request, *args, **kwargs):
        """The page's patch counts per state in one grouped query (not one per asset)."""
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        rows = list(page if page is not None else self.filter_queryset(self.get_queryset()))
        context = {**self.get_serializer_context(), "patch_counts": patch_counts([a.pk for a in rows])}
        data = AssetSerializer(rows, many=True, context=context).data
        return self.get_paginated_response(data) if page is not None else Response(data)

    def _paged(self, qs, serializer_class):
        page = self.paginate_queryset(qs)
        return self.get_paginated_response(serializer_class(page, many=True).data)

    @extend_schema(responses=SoftwareSerializer(many=True))
    @action(detail=True, methods=["get"])
    def software(self, request, pk=None):
        return self._paged(self.get_object().software.all(), SoftwareSerializer)

    @extend_schema(responses=PatchSerializer(many=True))
    @action(detail=True, methods=["get"])
    def patches(self, request, pk=None):
        patches = self.get_object().patches.all()
        if request.query_params.get("state"):  # ?state=pending|approved|failed|rejected|installed
            patches = patches.filter(state=request.query_params["state"])
        return self._paged(patches, PatchSerializer)
