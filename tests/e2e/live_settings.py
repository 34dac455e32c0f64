"""Settings for the live e2e stack: the product's settings with recovery timers shortened.

Only timers change, so a test can watch recovery (a killed worker's events coming back)
in seconds instead of the production minutes:
- the inbound-event processing lease (a claim by a dead worker expires),
- the age after which the sweeper hands out accepted events again, and
- Redis' visibility timeout (kombu re-delivers messages a dead worker had reserved).
"""

import os

from tests.settings import *  # noqa: F403
from tests.settings import CELERY_BROKER_TRANSPORT_OPTIONS

PSA_INBOUND_LEASE_SECONDS = int(os.environ.get("PSA_E2E_LEASE_SECONDS", "6"))
PSA_INBOUND_SWEEP_AFTER_SECONDS = int(os.environ.get("PSA_E2E_SWEEP_AFTER_SECONDS", "5"))
CELERY_BROKER_TRANSPORT_OPTIONS = {
    **CELERY_BROKER_TRANSPORT_OPTIONS,
    "visibility_timeout": int(os.environ.get("PSA_E2E_VISIBILITY_TIMEOUT", "10")),
    "unacked_restore_interval": 2,
    "unacked_restore_throttle": 1,
}
