"""The product's URLs plus the bare-INSERT floor view (bench only)."""

import json

from django.db import connection
from django.http import JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from psa.urls import handler404, handler500  # noqa: F401
from psa.urls import urlpatterns as product_urlpatterns

# Created by bench/common.py (CREATE_BARE_TABLE) right after migrate.
BARE_TABLE = "bench_bare_event"


@csrf_exempt
def bare_insert(request):
    """One INSERT of the raw request (like the inbound event log row), then 202."""
    headers = {
        k.lower(): v for k, v in request.headers.items() if k.lower() in {"content-type", "user-agent"}
    }
    with connection.cursor() as cur:
        cur.execute(
            f"INSERT INTO {BARE_TABLE} (body, headers) VALUES (%s, %s)", [request.body, json.dumps(headers)]
        )
    return JsonResponse({"status": "accepted"}, status=202)


urlpatterns = [path("bench/bare-insert/", bare_insert)] + list(product_urlpatterns)
