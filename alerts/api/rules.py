"""``alert-rules/``: ordered alert rules (admins write, everyone in the tenant reads)."""

from __future__ import annotations

import re

import django_filters
from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from alerts.models import AlertRule, RuleAction
from alerts.services import rules as svc
from alerts.services.templating import FIELDS as TEMPLATE_FIELDS
from integrations.records import SEVERITIES
from psa.api.permissions import AdminOrReadOnly
from psa.api.serializers import TenantModelSerializer
from psa.api.viewsets import TenantModelViewSet
from psa.models import Client

_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)


def _check_template(value: str) -> str:
    names = [m.group(1).strip() for m in _PLACEHOLDER.finditer(value or "")]
    unknown = sorted({n for n in names if n not in TEMPLATE_FIELDS})
    if unknown:
        raise serializers.ValidationError(
            f"Unknown field(s) {', '.join(repr(n) for n in unknown)}; use {{{{ field }}}} with one of: "
            f"{', '.join(TEMPLATE_FIELDS)}."
        )
    return value


class AlertRuleSerializer(TenantModelSerializer):
    position = serializers.IntegerField(required=False, min_value=1)
    conditions = serializers.JSONField(required=False)
    priority_map = serializers.JSONField(required=False)

    class Meta:
        model = AlertRule
        fields = [
            "id", "name", "position", "enabled", "is_catch_all", "conditions", "action", "board", "priority",
            "priority_map", "category", "assignee", "title_template", "description_template", "notify_users",
            "notify_email", "auto_close", "reset_on_close", "occurrence_note_minutes", "reopen_window_hours",
            "created_at", "updated_at",
        ]
        read_only_fields = ["is_catch_all", "created_at", "updated_at"]

    def validate_conditions(self, value):
        try:
            cleaned = svc.clean_conditions(value)
        except svc.ConditionError as exc:
            raise serializers.ValidationError(exc.errors) from None
        ids = cleaned.get("clients") or []
        if ids:
            found = set(Client.objects.filter(pk__in=ids).values_list("pk", flat=True))
            missing = [i for i in ids if i not in found]
            if missing:
                # Same answer for another tenant's id and a free one: no existence oracle.
                raise serializers.ValidationError({"clients": [f"Unknown client id(s): {', '.join(map(str, missing))}."]})
        return cleaned

    def validate_priority_map(self, value):
        from tickets.models import Priority

        if value in (None, ""):
            return {}
        if not isinstance(value, dict):
            raise serializers.ValidationError("Must be an object {severity: priority id}.")
        out: dict[str, int] = {}
        for sev, pid in value.items():
            if sev not in SEVERITIES:
                raise serializers.ValidationError(f"Unknown severity {sev!r}; use one of {', '.join(SEVERITIES)}.")
            if pid is None:
                continue
            if isinstance(pid, bool) or not isinstance(pid, int):
                raise serializers.ValidationError(f"{sev}: must be a priority id.")
            out[sev] = pid
        found = set(Priority.objects.filter(pk__in=set(out.values())).values_list("pk", flat=True))
        missing = sorted({p for p in out.values() if p not in found})
        if missing:
            raise serializers.ValidationError(f"Unknown priority id(s): {', '.join(map(str, missing))}.")
        return out

    def validate_title_template(self, value):
        return _check_template(value)

    def validate_description_template(self, value):
        return _check_template(value)

    def validate(self, attrs):
        inst = self.instance
        if inst is not None and inst.is_catch_all:
            if attrs.get("enabled") is False:
                raise ValidationError({"enabled": [
                    "The catch-all cannot be disabled; set its action to 'ignore' to drop alerts no other rule matches."
                ]})
            if attrs.get("conditions"):
                raise ValidationError({"conditions": ["The catch-all matches every alert and has no conditions."]})
            attrs.pop("position", None)  # always last
        act = attrs.get("action", getattr(inst, "action", RuleAction.CREATE_TICKET))
        if act == RuleAction.CREATE_TICKET and attrs.get("board", getattr(inst, "board", None)) is None:
            board = svc.default_board()
            if board is None:
                raise ValidationError({"board": ["A rule that creates tickets needs a board."]})
            attrs["board"] = board
        return attrs

    # Placement lives here so the API and the settings pages save rules the same way.
    @transaction.atomic
    def create(self, validated_data):
        position = validated_data.pop("position", None)
        rule = super().create({**validated_data, "position": 0})
        svc.place_rule(rule, position)
        rule.refresh_from_db(fields=["position"])
        return rule

    @transaction.atomic
    def update(self, instance, validated_data):
        position = validated_data.pop("position", None)
        rule = super().update(instance, validated_data)
        if position is not None:
            svc.place_rule(rule, position)
            rule.refresh_from_db(fields=["position"])
        return rule


class AlertRuleFilter(django_filters.FilterSet):
    enabled = django_filters.BooleanFilter()
    action = django_filters.ChoiceFilter(choices=RuleAction.choices)

    class Meta:
        model = AlertRule
        fields: list[str] = []


class ReorderSerializer(serializers.Serializer):
    ids = serializers.ListField(child=serializers.IntegerField(), allow_empty=False)


class MoveSerializer(serializers.Serializer):
    direction = serializers.ChoiceField(choices=["up", "down"])


class RuleDryRunSerializer(serializers.Serializer):
    """The body of alert-rules/dry-run/ (checked by the view itself; this names its fields)."""

    rule = serializers.JSONField(help_text="The fields of an alert-rules/ POST (name optional).")
    limit = serializers.IntegerField(required=False, help_text="How many of the newest alerts (default 1000).")
    rule_id = serializers.IntegerField(required=False, help_text="The rule being edited, if any.")


class AlertRuleViewSet(TenantModelViewSet):
    serializer_class = AlertRuleSerializer
    permission_classes = [AdminOrReadOnly]
    filterset_class = AlertRuleFilter

    def get_serializer_class(self):
        return {"reorder": ReorderSerializer, "move": MoveSerializer, "dry_run": RuleDryRunSerializer}.get(
            self.action, AlertRuleSerializer)

    def queryset_for_tenant(self):
        return AlertRule.objects.order_by("is_catch_all", "position", "id").select_related(
            "board", "priority", "category", "assignee").prefetch_related("notify_users")

    def list(self, request, *args, **kwargs):
        svc.ensure_catch_all()  # a tenant always sees the rule that catches what nothing else does
        return super().list(request, *args, **kwargs)

    def destroy(self, request, *args, **kwargs):
        try:
            svc.delete_rule(self.get_object())
        except svc.OrderError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _ordered(self):
        qs = self.get_queryset()
        return Response(AlertRuleSerializer(qs, many=True, context=self.get_serializer_context()).data)

    @action(detail=False, methods=["post"])
    def reorder(self, request):
        data = ReorderSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            svc.reorder(data.validated_data["ids"])
        except svc.OrderError as exc:
            raise ValidationError({"ids": [str(exc)]}) from None
        return self._ordered()

    @action(detail=False, methods=["post"], url_path="dry-run")
    def dry_run(self, request):
        """POST {rule: {the fields of an alert-rules/ POST}, limit (default 1000), rule_id (when editing)}:
        which of the last ``limit`` alerts the rule would catch, which rule catches them today, and the
        board and priority each would get. Nothing is saved."""
        from alerts.services import dryrun

        body = request.data if isinstance(request.data, dict) else {}
        data = body.get("rule")
        if not isinstance(data, dict):
            raise ValidationError({"rule": ["An object with the fields of an alert rule."]})
        try:
            limit = dryrun.clamp_limit(body.get("limit"))
        except ValueError as exc:
            raise ValidationError({"limit": [str(exc)]}) from None
        existing = _editing(body.get("rule_id", data.get("id")), AlertRule)
        candidate = candidate_rule(data, existing, self.get_serializer_context())
        return Response(dryrun.dry_run_rule(candidate, limit=limit, replaces=getattr(existing, "pk", None)))

    @extend_schema(request=MoveSerializer, responses=AlertRuleSerializer)
    @action(detail=True, methods=["post"])
    def move(self, request, pk=None):
        rule = self.get_object()
        data = MoveSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            svc.move(rule, data.validated_data["direction"])
        except svc.OrderError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        rule.refresh_from_db()
        return Response(AlertRuleSerializer(rule, context=self.get_serializer_context()).data)


def _editing(rule_id, model):
    """The tenant's row being edited in a dry run (404 for another tenant's id or a free one)."""
    from django.shortcuts import get_object_or_404

    if rule_id in (None, ""):
        return None
    if isinstance(rule_id, bool) or not str(rule_id).isdigit():
        raise ValidationError({"rule_id": ["Must be the id of the rule (or window) being edited."]})
    return get_object_or_404(model.objects.all(), pk=int(rule_id))


def candidate_rule(data: dict, existing: AlertRule | None, context: dict) -> AlertRule:
    """An unsaved AlertRule from the fields of an alert-rules/ POST (validated exactly as a save would
    be; a dry run needs no name)."""
    fields = {k: v for k, v in data.items() if k != "id"}
    if existing is None:
        fields.setdefault("name", "(dry run)")
    serializer = AlertRuleSerializer(instance=existing, data=fields, partial=existing is not None, context=context)
    serializer.is_valid(raise_exception=True)
    values = dict(serializer.validated_data)
    values.pop("notify_users", None)
    rule = AlertRule()
    if existing is not None:
        for f in AlertRule._meta.concrete_fields:
            setattr(rule, f.attname, getattr(existing, f.attname))
    for key, value in values.items():
        setattr(rule, key, value)
    rule.pk = rule.id = None  # never the saved row: the run compares rules by identity
    if existing is None:
        rule.position = values.get("position")
    return rule
