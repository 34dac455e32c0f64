"""Shared web views: error handlers that answer JSON under /api/ and /webhooks/."""

from django.http import JsonResponse
from django.shortcuts import render


def _is_api(request) -> bool:
    return request.path.startswith(("/api/", "/webhooks/"))


def handler404(request, exception=None):
    if _is_api(request):
        return JsonResponse({"detail": "Not found."}, status=404)
    return render(request, "psa/error.html", {"code": 404, "message": "Page not found."}, status=404)


def handler500(request):
    if _is_api(request):
        return JsonResponse({"detail": "Internal server error."}, status=500)
    return render(request, "psa/error.html", {"code": 500, "message": "Something went wrong."}, status=500)
