"""Chunked request bodies under real gunicorn: read whole, with the size limit enforced while reading.

``Transfer-Encoding: chunked`` carries no Content-Length; Django used to read such a body as empty
(a webhook stored with 0 bytes, an API POST seen with no fields). psa.wsgi_input sizes it.
"""

from __future__ import annotations

import json
import os

import httpx
import pytest

from .flows import GenericWebhook, ok
from .harness import LiveStack, flush_redis
from .rawhttp import send_chunked

pytestmark = pytest.mark.e2e

WEBHOOK_LIMIT = 4096  # small, so the webhook's own 413 is reachable without megabytes


@pytest.fixture(scope="module")
def web(live_db_url, live_redis_url):
    """gunicorn only (no Celery worker: accepted events wait in the queue, which is all we read)."""
    flush_redis(live_redis_url)
    stack = LiveStack(
        live_db_url,
        live_redis_url,
        label=f"chunked-{os.getpid()}",
        start_worker=False,
        extra_env={"DJANGO_SETTINGS_MODULE": "tests.e2e.live_settings", "PSA_WEBHOOK_MAX_BYTES": str(WEBHOOK_LIMIT)},
    )
    with stack:
        yield stack
    flush_redis(live_redis_url)


@pytest.fixture
def api(web, transactional_db):
    created = web.create_tenant(f"Chunked MSP {os.getpid()}", f"chunked-{os.getpid()}@e2e.example")
    with web.api(created["api_token"]) as client:
        yield client


@pytest.fixture
def hook(api):
    generic = GenericWebhook(api)
    yield generic
    generic.close()


def alert_body(alert_id: str, pad: int = 0) -> bytes:
    body = {"event": "trigger", "alert_id": alert_id, "condition": "disk", "severity": "high",
            "title": "Disk full", "organization": {"id": "o1", "name": "Org"}, "device": {"id": "d1"},
            "message": "x" * pad}
    return json.dumps(body).encode()


def pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def test_chunked_webhook_is_read_whole_and_stored_replayable(web, api, hook):
    body = alert_body("chunk-1", pad=1500)
    port = web.port
    path = hook.url.split(str(port), 1)[1]
    headers = {"Content-Type": "application/json", hook.header_name: hook.secret}
    # Odd chunk boundaries, cutting through the JSON anywhere.
    r = send_chunked(port, "POST", path, headers, pieces(body, 7))
    assert r.status == 202, r.body
    event = ok(api.get(f"integrations/generic/events/{r.json()['event_id']}/"))
    assert event["status"] in ("accepted", "processed") and event["error"] == ""
    assert json.loads(event["body"]) == json.loads(body)


def test_chunked_webhook_sent_by_httpx_generator(web, api, hook):
    body = alert_body("chunk-2")

    def gen():
        yield from pieces(body, 100)

    r = httpx.post(hook.url, content=gen(), headers={"Content-Type": "application/json", hook.header_name: hook.secret})
    assert r.request.headers.get("transfer-encoding") == "chunked" and "content-length" not in r.request.headers
    assert r.status_code == 202, r.text
    event = ok(api.get(f"integrations/generic/events/{r.json()['event_id']}/"))
    assert json.loads(event["body"])["alert_id"] == "chunk-2"


def test_chunked_webhook_over_the_webhook_limit_is_413_and_logged(web, api, hook):
    body = alert_body("chunk-big", pad=WEBHOOK_LIMIT * 2)
    port = web.port
    path = hook.url.split(str(port), 1)[1]
    r = send_chunked(port, "POST", path, {"Content-Type": "application/json", hook.header_name: hook.secret},
                     pieces(body, 1000))
    assert r.status == 413, r.body
    (failed,) = [e for e in ok(api.get("integrations/generic/events/"))["results"] if e["status"] == "failed"]
    assert "over the 4096-byte limit" in failed["error"]


def test_chunked_api_post_is_read_whole(web, api):
    body = json.dumps({"name": "Chunky Client", "notes": "sent in pieces"}).encode()
    r = send_chunked(web.port, "POST", "/api/v1/clients/",
                     {"Content-Type": "application/json", "Authorization": api.headers["Authorization"]},
                     pieces(body, 5))
    assert r.status == 201, r.body
    assert r.json()["name"] == "Chunky Client" and r.json()["notes"] == "sent in pieces"
    assert ok(api.get("clients/", params={"q": "Chunky"}))["count"] == 1


def test_chunked_body_over_the_request_cap_is_413_before_django(web, api):
    # Over DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MiB): refused while reading, nothing created.
    body = json.dumps({"name": "Huge", "notes": "n" * (3 * 1024 * 1024)}).encode()
    r = send_chunked(web.port, "POST", "/api/v1/clients/",
                     {"Content-Type": "application/json", "Authorization": api.headers["Authorization"]},
                     pieces(body, 256 * 1024))
    assert r.status == 413 and "limit" in r.json()["detail"]
    assert ok(api.get("clients/", params={"q": "Huge"}))["count"] == 0
    # The server still answers normally afterwards.
    assert api.get("clients/").status_code == 200


def test_an_oversized_body_gets_a_413_the_sender_can_read(hook, api):
    """Python's urllib writes the whole body before it reads the answer: a server that answers 413 and
    closes while the body is still coming gives it a broken pipe instead. Intake drains a bounded amount."""
    import urllib.error
    import urllib.request

    body = b'{"event": "trigger", "alert_id": "big", "message": "' + b"x" * (6 * 1024 * 1024) + b'"}'
    request = urllib.request.Request(hook.url, data=body, method="POST", headers={
        "Content-Type": "application/json", hook.header_name: hook.secret})
    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.urlopen(request, timeout=60)
    assert answer.value.code == 413
    assert "limit" in json.loads(answer.value.read())["detail"]
    # The proven sender's refused request is in the event log, truncated.
    failed = [e for e in ok(api.get("integrations/generic/events/"))["results"] if e["status"] == "failed"]
    assert failed and "over the" in failed[0]["error"]
