"""Settings for the test suite: the product's, plus the provider that lives only under tests/
(tests/kit_provider), installed the way a fifth provider would be: one INSTALLED_APPS line."""

from psa.settings import *  # noqa: F403
from psa.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.kit_provider"]
# The test client's login() authenticates without a request, which django-axes refuses; tests of
# login throttling switch it on (tests/integration/test_accounts_security.py).
AXES_ENABLED = False
