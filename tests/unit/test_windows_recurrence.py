"""Maintenance windows: one-off, recurring across DST (wall-clock time kept), scopes, next start."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from alerts.models import MaintenanceWindow
from alerts.services import windows
from psa.tenancy import tenant_context

UTC = dt.UTC
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def utc(*args):
    return dt.datetime(*args, tzinfo=UTC)


def win(**kw):
    """An unsaved window (the recurrence functions need no database)."""
    kw.setdefault("name", "w")
    kw.setdefault("enabled", True)
    kw.setdefault("timezone", "UTC")
    kw.setdefault("rrule", "")
    return MaintenanceWindow(**kw)


def ctx(**kw):
    base = {"provider": "generic", "client_id": None, "asset_id": None, "severity": "high", "title": "t"}
    base.update(kw)
    return base


# -- one-off ---------------------------------------------------------------------------------


def test_one_off_window_covers_start_inclusive_end_exclusive():
    w = win(starts_at=utc(2025, 5, 1, 10), ends_at=utc(2025, 5, 1, 12))
    assert windows.occurrence_at(w, utc(2025, 5, 1, 10)) == (utc(2025, 5, 1, 10), utc(2025, 5, 1, 12))
    assert windows.is_active(w, utc(2025, 5, 1, 11, 59))
    assert not windows.is_active(w, utc(2025, 5, 1, 12))
    assert not windows.is_active(w, utc(2025, 5, 1, 9, 59))
    assert windows.next_start(w, utc(2025, 4, 1)) == utc(2025, 5, 1, 10)
    assert windows.next_start(w, utc(2025, 5, 1, 10)) is None


def test_disabled_window_is_never_active():
    w = win(starts_at=utc(2025, 5, 1, 10), ends_at=utc(2025, 5, 1, 12), enabled=False)
    assert not windows.is_active(w, utc(2025, 5, 1, 11))


# -- recurring across DST ----------------------------------------------------------------------


def berlin_saturday_night():
    # Saturday 22:00 - Sunday 02:00 local, first occurrence in winter (CET, UTC+1).
    return win(
        starts_at=dt.datetime(2025, 1, 4, 22, 0, tzinfo=BERLIN),
        ends_at=dt.datetime(2025, 1, 5, 2, 0, tzinfo=BERLIN),
        rrule="FREQ=WEEKLY;BYDAY=SA",
        timezone="Europe/Berlin",
    )


def test_weekly_berlin_window_keeps_local_wall_time_in_summer():
    w = berlin_saturday_night()
    # Winter: 22:00 CET = 21:00 UTC.
    assert windows.occurrence_at(w, utc(2025, 2, 8, 21, 30)) == (utc(2025, 2, 8, 21), utc(2025, 2, 9, 1))
    # Summer (after 30 March): 22:00 CEST = 20:00 UTC, ends 02:00 CEST = 00:00 UTC.
    start, end = windows.occurrence_at(w, utc(2025, 7, 5, 20, 30))
    assert start == utc(2025, 7, 5, 20) and end == utc(2025, 7, 6, 0)
    assert start.astimezone(BERLIN).hour == 22 and end.astimezone(BERLIN).hour == 2
    # 20:30 UTC was outside the window in winter (21:30 local), inside in summer (22:30 local).
    assert not windows.is_active(w, utc(2025, 2, 8, 20, 30))
    # 00:30 UTC Sunday is 02:30 CEST in summer: the window has already closed.
    assert not windows.is_active(w, utc(2025, 7, 6, 0, 30))
    # Not on other days.
    assert not windows.is_active(w, utc(2025, 7, 9, 20, 30))


def test_berlin_window_on_the_night_of_the_change():
    w = berlin_saturday_night()
    # 29 March 2025: starts 22:00 CET (21:00 UTC); clocks jump at 02:00 -> 03:00 on the 30th.
    start, end = windows.occurrence_at(w, utc(2025, 3, 29, 23))
    assert start == utc(2025, 3, 29, 21)
    assert end == utc(2025, 3, 30, 1)  # 02:00 CET, the instant the clocks jump to 03:00 CEST
    assert windows.is_active(w, utc(2025, 3, 30, 0, 59))
    assert not windows.is_active(w, utc(2025, 3, 30, 1, 0))


def test_berlin_next_start_moves_one_hour_earlier_in_utc_after_the_change():
    w = berlin_saturday_night()
    assert windows.next_start(w, utc(2025, 3, 25)) == utc(2025, 3, 29, 21)  # CET
    assert windows.next_start(w, utc(2025, 4, 1)) == utc(2025, 4, 5, 20)  # CEST: still 22:00 local
    assert windows.next_start(w, utc(2025, 10, 20)) == utc(2025, 10, 25, 20)  # last Saturday of CEST
    assert windows.next_start(w, utc(2025, 10, 26)) == utc(2025, 11, 1, 21)  # back to CET


def test_weekly_new_york_window_keeps_local_wall_time():
    # Wednesdays 01:00-03:00 local, starting in winter (EST, UTC-5). DST starts 9 March 2025.
    w = win(
        starts_at=dt.datetime(2025, 1, 8, 1, 0, tzinfo=NEW_YORK),
        ends_at=dt.datetime(2025, 1, 8, 3, 0, tzinfo=NEW_YORK),
        rrule="FREQ=WEEKLY;BYDAY=WE",
        timezone="America/New_York",
    )
    assert windows.occurrence_at(w, utc(2025, 3, 5, 6, 30)) == (utc(2025, 3, 5, 6), utc(2025, 3, 5, 8))  # EST
    start, end = windows.occurrence_at(w, utc(2025, 3, 12, 5, 30))  # EDT, UTC-4
    assert (start, end) == (utc(2025, 3, 12, 5), utc(2025, 3, 12, 7))
    assert start.astimezone(NEW_YORK).hour == 1 and end.astimezone(NEW_YORK).hour == 3
    # 06:30 UTC was inside in winter (01:30 EST) but is 02:30 EDT now: still inside; 07:30 UTC is not.
    assert windows.is_active(w, utc(2025, 3, 12, 6, 30))
    assert not windows.is_active(w, utc(2025, 3, 12, 7, 30))
    assert windows.next_start(w, utc(2025, 3, 6)) == utc(2025, 3, 12, 5)
    # November: back to EST.
    assert windows.next_start(w, utc(2025, 11, 3)) == utc(2025, 11, 5, 6)


def test_first_occurrence_counts_even_off_rule_and_nothing_before_it():
    # Starts on a Friday but repeats on Saturdays: the Friday occurrence is still a window.
    w = win(starts_at=utc(2025, 1, 3, 22), ends_at=utc(2025, 1, 3, 23), rrule="FREQ=WEEKLY;BYDAY=SA")
    assert windows.is_active(w, utc(2025, 1, 3, 22, 30))
    assert windows.is_active(w, utc(2025, 1, 4, 22, 30))
    assert not windows.is_active(w, utc(2024, 12, 28, 22, 30))


def test_count_and_until_end_the_series():
    w = win(starts_at=utc(2025, 1, 1, 0), ends_at=utc(2025, 1, 1, 1), rrule="FREQ=DAILY;COUNT=3")
    assert windows.is_active(w, utc(2025, 1, 3, 0, 30))
    assert not windows.is_active(w, utc(2025, 1, 4, 0, 30))
    assert windows.next_start(w, utc(2025, 1, 3, 12)) is None
    # UNTIL in UTC (with Z) works with a local (floating) start.
    w = win(starts_at=dt.datetime(2025, 1, 1, 22, tzinfo=BERLIN), ends_at=dt.datetime(2025, 1, 1, 23, tzinfo=BERLIN),
            rrule="RRULE:FREQ=DAILY;UNTIL=20250105T210000Z", timezone="Europe/Berlin")
    assert windows.is_active(w, utc(2025, 1, 5, 21, 30))
    assert not windows.is_active(w, utc(2025, 1, 6, 21, 30))


def test_overnight_daily_window_covers_after_midnight():
    w = win(starts_at=utc(2025, 1, 1, 23), ends_at=utc(2025, 1, 2, 2), rrule="FREQ=DAILY")
    assert windows.occurrence_at(w, utc(2025, 6, 10, 1)) == (utc(2025, 6, 9, 23), utc(2025, 6, 10, 2))


@pytest.mark.parametrize(
    "rule",
    ["FREQ=MINUTELY", "FREQ=HOURLY", "BYDAY=SA", "FREQ=WEEKLY;BYDAY=XX", "FREQ=WEEKLY;INTERVAL=0",
     "FREQ=DAILY;COUNT=0", "DTSTART:20250101T000000\nRRULE:FREQ=DAILY", "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=31",
     "nonsense", ""],
)
def test_bad_rules_are_rejected_with_a_reason(rule):
    with pytest.raises(windows.WindowError) as err:
        windows.parse_rrule(rule, utc(2025, 1, 1), "UTC")
    assert str(err.value)


@pytest.mark.parametrize("name", ["Mars/Olympus", "../../etc/passwd", "", "europe/berlin"])
def test_unknown_time_zones_are_rejected(name):
    with pytest.raises(windows.WindowError):
        windows.get_zone(name)


def test_validate_checks_order_rule_and_zone():
    windows.validate(utc(2025, 1, 1), utc(2025, 1, 2), "FREQ=WEEKLY", "Europe/Berlin")
    with pytest.raises(windows.WindowError):
        windows.validate(utc(2025, 1, 2), utc(2025, 1, 2), "", "UTC")
    with pytest.raises(windows.WindowError):
        windows.validate(utc(2025, 1, 1), utc(2025, 1, 2), "FREQ=SECONDLY", "UTC")
    with pytest.raises(windows.WindowError):
        windows.validate(utc(2025, 1, 1), utc(2025, 1, 2), "", "Nowhere/City")


# -- scopes and matching_window (database) ----------------------------------------------------


@pytest.fixture
def scoped(tenant_a, make_client, make_asset):
    tenant = tenant_a.tenant
    c1, c2 = make_client(tenant), make_client(tenant)
    a1 = make_asset(tenant, c1)
    return tenant, c1, c2, a1


def make(tenant, **kw):
    kw.setdefault("starts_at", utc(2025, 5, 1, 10))
    kw.setdefault("ends_at", utc(2025, 5, 1, 12))
    with tenant_context(tenant):
        return MaintenanceWindow.objects.create(name=kw.pop("name", "w"), **kw)


AT = utc(2025, 5, 1, 11)


@pytest.mark.django_db
def test_scope_all_matches_everything(scoped):
    tenant, *_ = scoped
    w = make(tenant, scope="all")
    assert windows.matching_window(tenant.pk, ctx(), AT) == (w, utc(2025, 5, 1, 12))
    assert windows.matching_window(tenant.pk, ctx(), utc(2025, 5, 1, 12)) is None


@pytest.mark.django_db
def test_scope_integration_client_asset(scoped):
    tenant, c1, c2, a1 = scoped
    wi = make(tenant, scope="integration", integration="ninjaone", name="ninja")
    assert windows.matching_window(tenant.pk, ctx(provider="generic"), AT) is None
    assert windows.matching_window(tenant.pk, ctx(provider="ninjaone"), AT)[0] == wi
    wi.delete()
    wc = make(tenant, scope="client", client=c1, name="client")
    assert windows.matching_window(tenant.pk, ctx(client_id=c2.pk), AT) is None
    assert windows.matching_window(tenant.pk, ctx(client_id=None), AT) is None
    assert windows.matching_window(tenant.pk, ctx(client_id=c1.pk), AT)[0] == wc
    wc.delete()
    wa = make(tenant, scope="asset", asset=a1, name="asset")
    assert windows.matching_window(tenant.pk, ctx(client_id=c1.pk), AT) is None
    assert windows.matching_window(tenant.pk, ctx(client_id=c1.pk, asset_id=a1.pk), AT)[0] == wa


@pytest.mark.django_db
def test_disabled_windows_and_other_tenants_do_not_match(scoped, tenant_b):
    tenant, *_ = scoped
    make(tenant, scope="all", enabled=False)
    make(tenant_b.tenant, scope="all")
    assert windows.matching_window(tenant.pk, ctx(), AT) is None
    assert windows.matching_window(tenant_b.tenant.pk, ctx(), AT) is not None


@pytest.mark.django_db
def test_the_covering_occurrence_that_ends_last_wins(scoped):
    tenant, *_ = scoped
    make(tenant, scope="all", name="short", ends_at=utc(2025, 5, 1, 11, 30))
    long = make(tenant, scope="all", name="long", starts_at=utc(2025, 4, 1, 10), ends_at=utc(2025, 4, 1, 13),
                rrule="FREQ=DAILY")
    assert windows.matching_window(tenant.pk, ctx(), AT) == (long, utc(2025, 5, 1, 13))


@pytest.mark.django_db
def test_recurring_window_matches_through_matching_window(scoped):
    tenant, *_ = scoped
    w = make(tenant, scope="all", starts_at=dt.datetime(2025, 1, 4, 22, tzinfo=BERLIN),
             ends_at=dt.datetime(2025, 1, 5, 2, tzinfo=BERLIN), rrule="FREQ=WEEKLY;BYDAY=SA", timezone="Europe/Berlin")
    assert windows.matching_window(tenant.pk, ctx(), utc(2025, 7, 5, 23)) == (w, utc(2025, 7, 6, 0))
    assert windows.matching_window(tenant.pk, ctx(), utc(2025, 7, 6, 0, 30)) is None
