"""Handlers of side-effect kinds, registered by the apps that cause them (in their AppConfig.ready()).

A handler is two functions:
- ``perform(effect)``: the outside call (provider, mail server), outside any transaction. It returns a
  short detail, or raises ``Skip`` (nothing to do, with the reason), ``Permanent`` (failed, no retry), or
  anything else to be retried later (``integrations.errors.RateLimited`` has its Retry-After honoured).
- ``record(effect, state, detail)``: optional; runs inside the transaction that writes the row's new state
  (done / failed / skipped, or pending between retries): ticket notes, rows mirroring the state. It runs
  exactly once per final state because that transaction is fenced on the worker's claim.

``at_most_once``: the call must never be repeated when a worker dies during it (an email): the row is
marked in doubt before the call and such a row is failed as "may have been sent" instead of retried.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from outbox.models import SideEffect


class Skip(Exception):
    """Nothing to do after all; ``str(exc)`` says why (state skipped)."""


class Permanent(Exception):
    """Failed for good (a retry cannot help); ``str(exc)`` says why (state failed)."""


@dataclass(frozen=True)
class Handler:
    kind: str
    perform: Callable[[SideEffect], str | None]
    record: Callable[[SideEffect, str, str], None] | None = None
    at_most_once: bool = False


_HANDLERS: dict[str, Handler] = {}


def register(kind: str, perform, *, record=None, at_most_once: bool = False) -> None:
    _HANDLERS[kind] = Handler(kind, perform, record, at_most_once)


def handler(kind: str) -> Handler:
    try:
        return _HANDLERS[kind]
    except KeyError:
        raise LookupError(f"no outbox handler registered for {kind!r}") from None


def kinds() -> list[str]:
    return sorted(_HANDLERS)
