"""Settings for the benchmarks only: the product's settings plus a bench-only URLconf.

The extra URL (``/bench/bare-insert/``) is the floor the webhook intake is compared
with: the same Django stack (middleware, WSGI, gunicorn) doing one INSERT and
answering 202. It exists only here, never in the product's URLs.
"""

from psa.settings import *

ROOT_URLCONF = "bench.bench_urls"
# Bench runs print figures, not request logs.
LOGGING["root"]["level"] = "WARNING"
