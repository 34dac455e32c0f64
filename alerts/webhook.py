"""POST /webhooks/{provider}/{integration_key}/: a thin view over alerts.services.intake."""

import logging

from django.db import InterfaceError, OperationalError
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt

from alerts.services.intake import receive_webhook

log = logging.getLogger(__name__)
RETRY_AFTER_SECONDS = 5


@csrf_exempt
def webhook(request, provider: str, key: str):
    try:
        return receive_webhook(provider, key, request)
    except (OperationalError, InterfaceError) as exc:
        # The database is down or restarting: nothing was stored (or the store's answer was lost, and the
        # sender's retry is then a duplicate of a stored row), so never a 202. Senders retry a 503.
        # Django closes the broken connection when the request finishes (close_if_unusable_or_obsolete), so
        # the next request connects afresh: intake recovers by itself once the database is back.
        log.warning("webhook for %s refused: database unavailable (%s)", provider, type(exc).__name__)
        response = JsonResponse({"detail": "Temporarily unable to store the webhook; retry shortly."}, status=503)
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
