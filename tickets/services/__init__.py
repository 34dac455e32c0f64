from .numbering import next_ticket_number
from .tickets import (
    TicketError,
    add_note,
    add_time_entry,
    create_ticket,
    default_status_for,
    human_touched,
    update_ticket,
)

__all__ = [
    "TicketError",
    "add_note",
    "add_time_entry",
    "create_ticket",
    "default_status_for",
    "human_touched",
    "next_ticket_number",
    "update_ticket",
]
