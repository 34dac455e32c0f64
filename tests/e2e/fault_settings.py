"""Settings of the fault tests' stack: the e2e settings, with the outbox's and the pipeline's timers and the
mail server taken from the environment the test gives the processes."""

import os

from tests.e2e.live_settings import *

for _name in ("PSA_OUTBOX_RETRY_BASE_SECONDS", "PSA_OUTBOX_RETRY_MAX_SECONDS", "PSA_OUTBOX_GIVE_UP_SECONDS",
              "PSA_OUTBOX_LEASE_SECONDS", "PSA_STORM_NEW_CONDITIONS_PER_MINUTE"):
    if os.environ.get(_name):
        globals()[_name] = float(os.environ[_name])
EMAIL_TIMEOUT = 5
