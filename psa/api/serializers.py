"""Serializer base that scopes every related field to the current tenant."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from rest_framework import serializers

from psa.tenancy import TenantModel, get_current_tenant_id


class TenantScopedPrimaryKeyRelatedField(serializers.PrimaryKeyRelatedField):
    """Related field whose choices are the current tenant's rows only (another tenant's id -> 400 'does not exist')."""

    def get_queryset(self):
        qs = super().get_queryset()
        model = qs.model
        if issubclass(model, TenantModel):
            return model.objects.all()
        if model is get_user_model():
            return qs.filter(tenant_membership__tenant_id=get_current_tenant_id())
        return qs


class TenantModelSerializer(serializers.ModelSerializer):
    serializer_related_field = TenantScopedPrimaryKeyRelatedField

    def build_relational_field(self, field_name, relation_info):
        field_class, field_kwargs = super().build_relational_field(field_name, relation_info)
        if field_class is serializers.PrimaryKeyRelatedField:
            field_class = TenantScopedPrimaryKeyRelatedField
        return field_class, field_kwargs
