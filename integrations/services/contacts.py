"""Linking a device's last logged-in user to a contact of the asset's client.

``DOMAIN\\mlopez``, ``AzureAD\\mlopez`` and ``mlopez@harbor.example`` all name the login ``mlopez``,
matched against the local part of a contact's email; failing that, the user is compared with the
contact's full name ("Maria Lopez", also from a login like ``maria.lopez``). Only contacts of the
asset's own client are candidates, and only a single match links: two contacts with the same login
(or name) in one client link neither, rather than the wrong person.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from psa.models import Contact


def _fold(value: str) -> str:
    return " ".join(value.split()).casefold()


def login_of(user: str) -> str:
    """The login part of ``DOMAIN\\user``, ``user@domain`` or ``user``."""
    value = (user or "").strip()
    if "\\" in value:
        value = value.rsplit("\\", 1)[1]
    elif "@" in value:
        value = value.split("@", 1)[0]
    return _fold(value)


def name_of(user: str) -> str:
    """The user as a full name: "Maria Lopez" as written, "maria.lopez" / "maria_lopez" as words."""
    value = (user or "").strip()
    if " " in value:
        return _fold(value)
    login = login_of(value)
    return _fold(login.replace(".", " ").replace("_", " ")) if ("." in login or "_" in login) else ""


class ContactIndex:
    """The contacts of some clients (one query), to match many devices' users at once."""

    def __init__(self, client_ids: Iterable[int]):
        self.by_login: dict[int, dict[str, set[int]]] = defaultdict(lambda: defaultdict(set))
        self.by_name: dict[int, dict[str, set[int]]] = defaultdict(lambda: defaultdict(set))
        self.ids: dict[int, set[int]] = defaultdict(set)
        wanted = {c for c in client_ids if c is not None}
        if not wanted:
            return
        for pk, client_id, name, email in Contact.objects.filter(client_id__in=wanted).values_list(
                "pk", "client_id", "name", "email"):
            self.ids[client_id].add(pk)
            local = _fold(email.split("@", 1)[0]) if email and "@" in email else ""
            if local:
                self.by_login[client_id][local].add(pk)
            if name and name.strip():
                self.by_name[client_id][_fold(name)].add(pk)

    def match(self, client_id: int, user: str) -> int | None:
        """The one contact of ``client_id`` this user is, or None."""
        login = login_of(user)
        if login:
            found = self.by_login[client_id].get(login, set())
            if len(found) == 1:
                return next(iter(found))
            if found:
                return None  # ambiguous: never guess between two people
        name = name_of(user)
        found = self.by_name[client_id].get(name, set()) if name else set()
        return next(iter(found)) if len(found) == 1 else None

    def contact_for(self, client_id: int, user: str, current: int | None) -> int | None:
        """The asset's contact after this device report: the user's contact; with no user reported,
        the current link while it still belongs to the client."""
        if user and user.strip():
            return self.match(client_id, user)
        return current if current in self.ids[client_id] else None
