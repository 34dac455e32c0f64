"""Settings for the benchmarks only: the product's settings plus a bench-only URLconf.

The extra URL (``/bench/bare-insert/``) is the floor the webhook intake is compared
with: the same Django stack (middleware, WSGI, gunicorn) doing one INSERT and
answering 202. It exists only here, never in the product's URLs.
"""

import os

from psa.settings import *

ROOT_URLCONF = "bench.bench_urls"
# Bench runs print figures, not request logs.
LOGGING["root"]["level"] = "WARNING"
# The throughput benches post thousands of distinct conditions a minute on purpose: measure the
# per-condition pipeline, not the storm guard that would (rightly) hold them on one storm ticket.
PSA_STORM_NEW_CONDITIONS_PER_MINUTE = int(os.environ.get("PSA_STORM_NEW_CONDITIONS_PER_MINUTE", "1000000"))
