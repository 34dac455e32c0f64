"""POST /webhooks/{provider}/{integration_key}/: a thin view over alerts.services.intake."""

from django.views.decorators.csrf import csrf_exempt

from alerts.services.intake import receive_webhook


@csrf_exempt
def webhook(request, provider: str, key: str):
    return receive_webhook(provider, key, request)
