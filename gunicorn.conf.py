"""gunicorn settings for every deployment (README, Dockerfile, docker-compose, the e2e harness).

    gunicorn -c gunicorn.conf.py psa.wsgi:application

Threads (gthread), not the default sync worker: with sync workers one slow client holds a whole
worker, and two sockets trickling headers took the site offline. Here a slow client holds one
thread of ``workers x threads``; the buffering proxy in front (deploy/nginx, docker-compose
``proxy``) holds slow clients itself and hands gunicorn only complete requests. gunicorn does not
time out a client that stalls mid-request: in production it must sit behind that proxy.
Environment: GUNICORN_BIND, WEB_CONCURRENCY (workers), GUNICORN_THREADS, GUNICORN_TIMEOUT,
GUNICORN_ACCESSLOG ("-" = stdout, empty = off), GUNICORN_MAX_REQUESTS (0 = never recycle),
FORWARDED_ALLOW_IPS (read by gunicorn itself).
"""

import os

from gunicorn.glogging import Logger

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
# gthread with a fair queue: waiting requests are served round-robin by path (one webhook URL per
# integration), so one RMM's storm does not queue every other sender's webhook behind it.
worker_class = "psa.gunicorn_worker.FairThreadWorker"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "8"))

# A worker whose main loop is silent this long is restarted (requests run in threads: a slow
# request does not trip it). Graceful shutdown lets in-flight webhooks finish.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 20
# Idle kept-alive connections wait on the poller (no thread) and are closed after this.
keepalive = 5

# Request head limits (a webhook URL with its query fits easily; headers stay small).
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190

# Recycle workers now and then (memory hygiene), staggered so they do not restart together. Rarely:
# a restart costs a fresh worker's start-up on a busy machine, and at 5,000 requests one webhook storm
# restarted each worker every half minute, putting 0.5-0.9 s spikes into other tenants' webhooks
# (bench/fairness.py). 0 turns recycling off.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "100000"))
max_requests_jitter = max_requests // 10

accesslog = os.environ.get("GUNICORN_ACCESSLOG", "-") or None
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "info")


# The access log never shows the token of an invitation link.
class RedactingLogger(Logger):
    """gunicorn's logger with secrets carried in URLs (invitation links, psa.redact) replaced in every
    access-log field (request line, path, referer, headers)."""

    def atoms(self, resp, req, environ, request_time):
        from psa.redact import redact

        return {k: redact(v) if isinstance(v, str) else v
                for k, v in super().atoms(resp, req, environ, request_time).items()}


logger_class = RedactingLogger
