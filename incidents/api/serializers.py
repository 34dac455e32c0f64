"""Serializers of the incident router's API (names of ../shared/API.md: routing and status)."""

from __future__ import annotations

from rest_framework import serializers

from incidents.models import Escalation, Incident
from psa.api.serializers import TenantModelSerializer, TenantScopedPrimaryKeyRelatedField
from psa.models import Client
from tickets.models import Board, Category, Priority, Status


def _fk(queryset, help_text: str) -> TenantScopedPrimaryKeyRelatedField:
    return TenantScopedPrimaryKeyRelatedField(queryset=queryset, allow_null=True, required=False, help_text=help_text)


class RoutingSerializer(serializers.Serializer):
    """The routing an admin PUTs: every field optional (a partial routing may be saved; polling waits)."""

    security_board = _fk(Board.objects.all(), "Board of incident tickets of mapped organizations.")
    category = _fk(Category.objects.all(), "Optional category of incident tickets.")
    fallback_client = _fk(Client.objects.all(), "Client of tickets of unmapped or unknown organizations.")
    fallback_board = _fk(Board.objects.all(), "Triage board of those tickets.")
    priority_critical = _fk(Priority.objects.all(), "Priority of critical incidents.")
    priority_high = _fk(Priority.objects.all(), "Priority of high incidents.")
    priority_low = _fk(Priority.objects.all(), "Priority of low incidents.")
    poll_interval_minutes = serializers.IntegerField(required=False, help_text="1-60 minutes.")
    close_on_resolve = serializers.BooleanField(required=False,
                                                help_text="Close the ticket when the provider closes the incident.")
    closed_status = _fk(Status.objects.all(), "Closed status used by close-on-resolve.")
    remediation_approved_status = _fk(Status.objects.all(), "Status set when a remediation is approved.")
    escalation_tickets = serializers.BooleanField(required=False, help_text="Escalations also make tickets.")
    write_back = serializers.BooleanField(
        required=False, help_text="Closing an incident ticket resolves the incident in the provider.")


def routing_data(routing, integration) -> dict:
    from incidents.services.routing import missing

    data = {name: getattr(routing, f"{name}_id") for name in (
        "security_board", "category", "fallback_client", "fallback_board", "priority_critical", "priority_high",
        "priority_low", "closed_status", "remediation_approved_status")}
    data.update(
        poll_interval_minutes=integration.poll_interval_minutes,
        close_on_resolve=routing.close_on_resolve,
        escalation_tickets=routing.escalation_tickets,
        write_back=routing.write_back,
    )
    lacking = missing(routing if routing.pk else None)
    data.update(complete=not lacking, missing=lacking)
    return data


class IncidentStatusSerializer(serializers.Serializer):
    """The status card's figures (names of ../shared/API.md, then additions)."""

    account_name = serializers.CharField()
    organization_count = serializers.IntegerField()
    unmapped_count = serializers.IntegerField()
    open_incident_count = serializers.IntegerField()
    last_poll_at = serializers.DateTimeField(allow_null=True)
    last_poll_ok = serializers.BooleanField(allow_null=True)
    last_poll_error = serializers.CharField()
    routing_complete = serializers.BooleanField()
    connection_status = serializers.CharField()
    incident_count = serializers.IntegerField()
    held_incident_count = serializers.IntegerField(help_text="Incidents waiting for a complete routing.")
    open_incidents_with_closed_ticket = serializers.IntegerField()
    open_escalation_count = serializers.IntegerField()
    overdue_escalation_count = serializers.IntegerField()
    last_poll_message = serializers.CharField(help_text='"Last poll failed: <reason>", or "".')
    next_poll_at = serializers.DateTimeField(allow_null=True)
    poll_interval_minutes = serializers.IntegerField()
    routing_missing = serializers.ListField(child=serializers.CharField())
    routing_message = serializers.CharField()


class LandingSerializer(serializers.Serializer):
    """Where a test incident's ticket landed."""

    incident = serializers.IntegerField()
    external_id = serializers.CharField()
    routed_to = serializers.CharField(help_text='"mapped" (security board) or "fallback" (triage board).')
    ticket = serializers.IntegerField(allow_null=True)
    ticket_number = serializers.IntegerField(allow_null=True)
    title = serializers.CharField()
    board = serializers.IntegerField(allow_null=True)
    board_name = serializers.CharField()
    client = serializers.IntegerField(allow_null=True)
    client_name = serializers.CharField()
    priority = serializers.IntegerField(allow_null=True)
    priority_name = serializers.CharField()
    status_name = serializers.CharField()
    is_closed = serializers.BooleanField()


class IncidentSerializer(TenantModelSerializer):
    url = serializers.CharField(read_only=True, help_text="The report in the provider's portal, or \"\".")
    routed_to = serializers.CharField(
        read_only=True, help_text='"mapped" (security board), "fallback" (triage board), or "" before its ticket.')
    ticket_number = serializers.IntegerField(source="ticket.number", read_only=True, default=None)
    board = serializers.IntegerField(source="ticket.board_id", read_only=True, default=None)
    client = serializers.IntegerField(source="ticket.client_id", read_only=True, default=None)

    class Meta:
        model = Incident
        fields = ["id", "provider", "external_id", "ticket", "ticket_number", "board", "client", "routed_to",
                  "organization_external_id", "organization_name", "subject", "severity", "status", "is_closed",
                  "url", "host_name", "held", "is_test", "provider_updated_at", "created_at", "updated_at"]
        read_only_fields = fields


class EscalationSerializer(TenantModelSerializer):
    url = serializers.CharField(read_only=True, help_text="The escalation in the provider's portal, or \"\".")

    class Meta:
        model = Escalation
        fields = ["id", "provider", "external_id", "ticket", "subject", "type", "subtype", "message", "severity",
                  "status", "is_closed", "overdue", "organizations", "url", "provider_updated_at", "created_at",
                  "updated_at"]
        read_only_fields = fields


class TestIncidentSerializer(serializers.Serializer):
    organization = serializers.IntegerField(
        required=False, allow_null=True,
        help_text="The id of one of this integration's organizations (integrations/{provider}/organizations/); "
                  "omitted or null: an unmapped organization (the fallback client's triage board).")
