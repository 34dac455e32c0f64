"""Each provider's severity map is data (integrations.coerce.SeverityMap): the parser, the webhook card
and the provider's docs page must all show that one table. This keeps the docs page honest."""

from __future__ import annotations

from pathlib import Path

import pytest

from integrations import registry

REPO = Path(__file__).resolve().parents[2]
DOCUMENTED = [cls for cls in registry.all_providers() if cls.severity_map is not None and cls.docs]


def test_every_provider_with_a_severity_map_has_a_docs_page():
    missing = [cls.slug for cls in registry.all_providers()
               if cls.severity_map is not None and not cls.docs and not cls.__module__.startswith("tests.")]
    assert not missing, f"declare Provider.docs (the page that documents the severity map): {missing}"


@pytest.mark.parametrize("cls", DOCUMENTED, ids=lambda c: c.slug)
def test_docs_page_shows_every_row_of_the_severity_map(cls):
    lines = [line.lower() for line in (REPO / cls.docs).read_text().splitlines()]
    for word, ours in cls.severity_map.table.items():
        assert any(f"`{word.lower()}`" in line and f"`{ours}`" in line for line in lines), (
            f"{cls.docs} does not document {word} -> {ours} (a table row naming both in backticks)")
    assert any("anything else" in line and f"`{cls.severity_map.default}`" in line for line in lines), (
        f"{cls.docs} does not say what unknown severities become ({cls.severity_map.default})")
