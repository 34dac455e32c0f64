"""Ticket title/description templates: {{ field }} only, safe against hostile input, never raising."""

from __future__ import annotations

import pytest

from alerts.services.templating import render, render_description, render_title

CTX = {
    "title": "Disk C: low", "message": "4 GB free", "severity": "high", "device": "ACME-FS01", "client": "Acme",
    "organization": "Acme Org", "provider": "generic", "alert_type": "disk", "asset_type": "server",
    "client_id": 7, "asset_id": 9,
}


def test_fields_are_substituted_with_or_without_spaces():
    assert render("{{severity}}|{{ title }}|{{   device   }}|{{ client }}|{{ organization }}", CTX) == (
        "high|Disk C: low|ACME-FS01|Acme|Acme Org"
    )
    assert render("{{ provider }}/{{ alert_type }}/{{ message }}", CTX) == "generic/disk/4 GB free"


def test_missing_or_unknown_fields_render_empty():
    assert render("[{{ severity }}] {{ title }} on {{ device }}", {"title": "X"}) == "[] X on "
    assert render("a{{ nope }}b{{ client_id }}c", CTX) == "abc"  # ids are not template fields
    assert render("{{ title }}", {"title": None}) == ""


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ title.__class__ }}",
        "{{ title|upper }}",
        "{{ settings.SECRET_KEY }}",
        "{{ request }}",
        "{{ title.upper }}",
    ],
)
def test_hostile_expressions_render_empty(template):
    out = render("<" + template + ">", CTX)
    assert out == "<>"


@pytest.mark.parametrize("template", ["{% load static %}", "{% debug %}", "{% include '/etc/passwd' %}", "{# c #}"])
def test_tags_stay_literal_text(template):
    assert render(template + " {{ title }}", CTX) == template + " Disk C: low"


def test_values_are_not_expanded_twice():
    hostile = dict(CTX, title="{{ client }} {% debug %}")
    assert render("{{ title }}", hostile) == "{{ client }} {% debug %}"


def test_unicode_quotes_and_newlines_pass_through():
    ctx = dict(CTX, title='Ünïcødé "quoted" \'x\' ✓', message="line1\nline2")
    assert render("{{ title }}: {{ message }}", ctx) == 'Ünïcødé "quoted" \'x\' ✓: line1\nline2'


def test_render_never_raises():
    class Boom:
        def __str__(self):
            raise RuntimeError("boom")

    assert render("{{ title }} x", {"title": Boom()}) == "{{ title }} x"  # raw text on failure
    assert render(None, CTX) == ""
    assert render("", CTX) == ""
    assert render("{{ unclosed", CTX) == "{{ unclosed"


def test_default_title_with_and_without_device():
    assert render_title("", CTX) == "[high] Disk C: low on ACME-FS01"
    assert render_title(None, dict(CTX, device="")) == "[high] Disk C: low"


def test_title_is_one_line_bounded_and_never_empty():
    assert render_title("{{ message }}", dict(CTX, message="a\nb\tc")) == "a b c"
    assert len(render_title("{{ title }}", dict(CTX, title="x" * 2000))) == 500
    # A template that renders to nothing falls back to the default.
    assert render_title("{{ nope }}", CTX) == "[high] Disk C: low on ACME-FS01"
    assert render_title("{{ nope }}", {"severity": "low"}) == "[low] Alert"


def test_description_default_and_template():
    text = render_description("", CTX)
    assert text.startswith("4 GB free\n\n")
    assert "Device: ACME-FS01" in text and "Client: Acme" in text and "Source: generic" in text
    sparse = render_description("", {"severity": "low", "message": ""})
    assert sparse == "Severity: low"
    assert render_description("Host {{ device }}\n{{ message }}", CTX) == "Host ACME-FS01\n4 GB free"
