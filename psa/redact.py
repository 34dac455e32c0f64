"""Secrets that travel in URLs, kept out of logs.

An invitation link (``/accounts/invitations/<token>/``, psa.services.invitations) carries its secret in
the path, so any line that quotes a request path (Django's "Bad Request: /..." warnings, runserver,
gunicorn's access log through ``gunicorn.conf.py``) would write a live token. ``redact()`` replaces it;
``RedactSecrets`` is the logging filter on the console handler (settings.LOGGING).

Nothing here imports Django: the logging configuration loads it before the apps are ready.
"""

from __future__ import annotations

import logging
import re

_INVITATION_PATH = re.compile(r"(/accounts/invitations/)[^/?#\s\"']+")
REDACTED = "[redacted]"


def redact(text: str) -> str:
    if "/accounts/invitations/" not in text:
        return text
    return _INVITATION_PATH.sub(lambda m: m.group(1) + REDACTED, text)


class RedactSecrets(logging.Filter):
    """Rewrites a record's message (and its traceback text) with the secrets replaced; keeps every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is the formatter's problem, not ours
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True
