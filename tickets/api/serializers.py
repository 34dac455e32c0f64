from __future__ import annotations

from rest_framework import serializers

from psa.api.serializers import TenantModelSerializer
from tickets.models import Board, Category, Priority, Status, Ticket, TicketActivity, TicketNote, TimeEntry


class BoardSerializer(TenantModelSerializer):
    class Meta:
        model = Board
        fields = ["id", "name", "description", "created_at"]


class StatusSerializer(TenantModelSerializer):
    class Meta:
        model = Status
        fields = ["id", "name", "board", "is_closed", "is_default", "position"]

    def validate(self, attrs):
        is_default = attrs.get("is_default", getattr(self.instance, "is_default", False))
        is_closed = attrs.get("is_closed", getattr(self.instance, "is_closed", False))
        if is_default and is_closed:
            raise serializers.ValidationError({"is_default": ["A closed status cannot be the default."]})
        if is_default:
            board = attrs.get("board", getattr(self.instance, "board", None))
            clash = Status.objects.filter(board=board, is_default=True)
            if self.instance is not None:
                clash = clash.exclude(pk=self.instance.pk)
            if clash.exists():
                raise serializers.ValidationError({"is_default": ["This board already has a default status."]})
        return attrs


class PrioritySerializer(TenantModelSerializer):
    class Meta:
        model = Priority
        fields = ["id", "name", "position"]


class CategorySerializer(TenantModelSerializer):
    class Meta:
        model = Category
        fields = ["id", "name"]


CLOSE_VIA_STATUS = (
    "is_closed follows the status: this status and is_closed disagree (send one of them, or both in agreement)."
)


class TicketSerializer(TenantModelSerializer):
    is_closed = serializers.BooleanField(source="status.is_closed", read_only=True)
    # Tickets linked because providers alerted on the same device (both directions stored).
    related_tickets = serializers.SerializerMethodField()
    # The span of the alerts on the ticket (null for a ticket without alerts); annotated by the view.
    first_seen = serializers.SerializerMethodField()
    last_seen = serializers.SerializerMethodField()

    class Meta:
        model = Ticket
        fields = [
            "id", "number", "title", "description", "client", "site", "contact", "board", "status", "priority",
            "category", "assignee", "asset", "source", "source_ref", "is_closed", "occurrence_count",
            "created_at", "updated_at", "closed_at", "related_tickets", "first_seen", "last_seen", "is_test",
        ]
        read_only_fields = ["number", "source", "source_ref", "occurrence_count", "created_at", "updated_at", "closed_at",
                            "is_test"]
        extra_kwargs = {"status": {"required": False}, "board": {"required": False}}

    def get_related_tickets(self, obj) -> list[int]:
        return sorted(r.related_id for r in obj.relations.all())

    def _span(self, obj) -> tuple:
        if not hasattr(obj, "first_seen"):  # a ticket just written (not from the annotated list)
            from django.db.models import Max, Min

            span = obj.alerts.aggregate(first=Min("first_seen"), last=Max("last_seen"))
            obj.first_seen, obj.last_seen = span["first"], span["last"]
        return obj.first_seen, obj.last_seen

    def get_first_seen(self, obj) -> str | None:
        value = self._span(obj)[0]
        return serializers.DateTimeField().to_representation(value) if value else None

    def get_last_seen(self, obj) -> str | None:
        value = self._span(obj)[1]
        return serializers.DateTimeField().to_representation(value) if value else None

    def validate(self, attrs):
        if self.instance is None and attrs.get("board") is None:
            # A new ticket without a board goes to "General", as on the new-ticket form.
            board = Board.objects.filter(name="General").first() or Board.objects.order_by("pk").first()
            if board is None:
                raise serializers.ValidationError({"board": ["This field is required (no board exists yet)."]})
            attrs["board"] = board
        board = attrs.get("board", getattr(self.instance, "board", None))
        status = attrs.get("status")
        if status is not None and board is not None and not status.applies_to(board):
            raise serializers.ValidationError({"status": [f"Status {status.name!r} is not available on board {board.name!r}."]})
        status = self._status_for_is_closed(status, board)
        if status is not None:
            attrs["status"] = status
        if self.instance is None and "client" not in attrs:
            # A ticket about an asset/site/contact belongs to that object's client.
            for name in ("asset", "site", "contact"):
                if attrs.get(name) is not None:
                    attrs["client"] = attrs[name].client
                    break
        client = attrs.get("client", getattr(self.instance, "client", None))
        for name in ("site", "contact", "asset"):
            obj = attrs.get(name)
            if obj is not None and obj.client_id != getattr(client, "pk", None):
                raise serializers.ValidationError({name: [f"This {name} does not belong to the ticket's client."]})
        return attrs


    def _status_for_is_closed(self, status, board):
        """``is_closed`` follows the status. ``{"is_closed": true}`` alone closes the ticket through the
        board's closed status (its own, else a shared one), ``false`` reopens it in the board's default
        open status; with a status that disagrees it is refused, never ignored. Returns the status to set."""
        wanted = self.initial_data.get("is_closed") if isinstance(self.initial_data, dict) else None
        if wanted is None:
            return status
        if not isinstance(wanted, bool):
            raise serializers.ValidationError({"is_closed": ["Must be true or false."]})
        current = status or getattr(self.instance, "status", None)
        closed_now = current.is_closed if current is not None else False  # new tickets start in an open status
        if wanted == closed_now:
            return status
        if status is not None:
            raise serializers.ValidationError({"is_closed": [CLOSE_VIA_STATUS]})
        choices = [s for s in Status.objects.filter(is_closed=wanted).order_by("position", "id") if s.applies_to(board)]
        own = [s for s in choices if s.board_id is not None]
        default = [s for s in choices if s.is_default]
        picked = (own or choices)[:1] if wanted else (default or own or choices)[:1]
        if not picked:
            word = "closed" if wanted else "open"
            raise serializers.ValidationError({"is_closed": [f"Board {board.name!r} has no {word} status."]})
        return picked[0]


class TicketNoteSerializer(TenantModelSerializer):
    class Meta:
        model = TicketNote
        fields = ["id", "body", "kind", "author", "created_at"]
        read_only_fields = ["author", "created_at"]

    def validate_kind(self, value):
        if value == "system":
            raise serializers.ValidationError("System notes are written by the system only.")
        return value

    def validate_body(self, value):
        if not value.strip():
            raise serializers.ValidationError("A note needs a body.")
        return value


class TimeEntrySerializer(TenantModelSerializer):
    class Meta:
        model = TimeEntry
        fields = ["id", "user", "minutes", "note", "created_at"]
        read_only_fields = ["user", "created_at"]

    def validate_minutes(self, value):
        if value <= 0:
            raise serializers.ValidationError("Minutes must be positive.")
        return value


class TicketActivitySerializer(serializers.ModelSerializer):
    class Meta:
        model = TicketActivity
        fields = ["id", "kind", "actor", "data", "created_at"]
