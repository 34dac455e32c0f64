"""A controllable clock for the noise tests: ``timezone.now()`` everywhere (models' auto_now too)."""

from __future__ import annotations

import datetime as dt
from contextlib import contextmanager
from unittest import mock

from django.utils import timezone


class Clock:
    def __init__(self, start: dt.datetime):
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> dt.datetime:
        self.now += dt.timedelta(seconds=seconds)
        return self.now


@contextmanager
def clock(start: dt.datetime | None = None):
    c = Clock(start or timezone.now().replace(microsecond=0))
    with mock.patch("django.utils.timezone.now", c):
        yield c
