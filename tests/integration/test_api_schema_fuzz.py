"""schemathesis against /api/schema/: every operation, a few generated requests each, answered
without a 5xx and as the schema declares (status code, content type, body shape).

The operations are read from the schema, so a new endpoint is covered without editing this file.
Half the examples of an operation with ids in its path use the ids of a real "world" (tests/world.py:
one row of every tenant model), so success answers are checked too, not only 404s. Bounded:
EXAMPLES per operation, no shrinking, TIME_CAP for the whole run; every failure is listed at the end.
Each example runs in a savepoint that is rolled back, so examples cannot disturb one another.
"""

from __future__ import annotations

import re
import time

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from psa.wsgi import application
from tests.integration.api_routes import api_routes
from tests.world import build_world

pytestmark = pytest.mark.django_db

EXAMPLES = 10
TIME_CAP_SECONDS = 60.0
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

schema = schemathesis.openapi.from_wsgi("/api/schema/", application)


class _Rollback(Exception):
    pass


@pytest.fixture
def _keep_the_test_connection():
    # The WSGI handler closes the database connection after each request; the test's transaction
    # lives on it (Django's test client disconnects the same receiver).
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def _shape(template: str) -> str:
    return re.sub(r"{\w+}", "{}", template)


def real_parameters(world) -> dict[str, dict[str, str]]:
    """Schema path shape -> {parameter name: a real value from the world} (for kwargs we can fill)."""
    out = {}
    for route in api_routes():
        if route.problem or not route.kwargs:
            continue
        values = []
        for name in route.kwargs:
            if name == "provider":
                values.append(world.get("integrations.Integration").provider)
            else:
                obj = world.object_for_model(route.kwarg_models[name])
                if obj is None:
                    break
                values.append(str(obj.pk))
        else:
            out[_shape(route.template)] = values
    return out


def test_api_conforms_to_its_schema(tenant_a, fast, _keep_the_test_connection):
    world = build_world(tenant_a)
    real = real_parameters(world)
    headers = {"Authorization": f"Token {world.api_token}"}
    stop_at = time.monotonic() + TIME_CAP_SECONDS
    failures, ran = [], 0
    for result in schema.get_all_operations():
        operation = result.ok()
        names = re.findall(r"{(\w+)}", operation.path)
        values = real.get(_shape(operation.path))

        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(), use_real=st.booleans())
        def run(case, use_real):
            if time.monotonic() > stop_at:
                return
            if use_real and values and len(values) == len(names):
                case.path_parameters = {**(case.path_parameters or {}), **dict(zip(names, values, strict=True))}
            try:
                with transaction.atomic():
                    case.call_and_validate(headers=headers, checks=CHECKS)
                    raise _Rollback
            except _Rollback:
                pass

        try:
            run()
            ran += 1
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001  (collected, reported below)
            failures.append(f"{operation.method.upper()} {operation.path}:\n{exc}")
    assert not failures, f"{len(failures)} operations failed:\n\n" + "\n\n".join(failures)
    assert ran >= 50  # the schema was read and its operations ran
