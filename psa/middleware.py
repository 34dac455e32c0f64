"""Request checks every view relies on, done once before any view runs."""

from __future__ import annotations

from django.http import HttpResponseBadRequest, JsonResponse

NUL = "\x00"


class RejectNulMiddleware:
    """400 for a NUL character in the path or the query string.

    PostgreSQL text cannot hold NUL: a search box given ``?q=%00`` reached the database and
    answered 500. No URL of ours carries one legitimately. Webhook URLs are left to intake, which
    stores what arrived (cleaned) in the event log.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not request.path.startswith("/webhooks/") and (NUL in request.path or _query_has_nul(request)):
            detail = "NUL characters (%00) are not allowed in the URL."
            if request.path.startswith("/api/"):
                return JsonResponse({"detail": detail}, status=400)
            return HttpResponseBadRequest(detail, content_type="text/plain; charset=utf-8")
        return self.get_response(request)


def _query_has_nul(request) -> bool:
    if "%00" not in request.META.get("QUERY_STRING", "").upper() and NUL not in request.META.get("QUERY_STRING", ""):
        return False  # the cheap test first: no encoded or raw NUL at all
    return any(NUL in key or any(NUL in v for v in values) for key, values in request.GET.lists())
