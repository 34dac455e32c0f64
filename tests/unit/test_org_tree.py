"""integrations.services.orgs.tree_info: inheritance, overrides and device counts of the organization tree."""

from __future__ import annotations

from integrations.services.orgs import tree_info


def test_inheritance_override_and_counts():
    rows = [  # (pk, external_id, parent, client, device_count)
        (1, "top", None, 10, 1),
        (2, "mid", "top", None, 2),
        (3, "leaf", "mid", None, 4),
        (4, "branch", "top", 20, 0),
        (5, "branch-leaf", "branch", None, 8),
        (6, "other", None, None, None),
        (7, "other-kid", "other", None, 16),
        (8, "other-mapped", "other", 30, 32),
        (9, "orphan", "gone", None, 64),  # parent not listed: a root
    ]
    info = tree_info(rows)
    assert [(info[e].effective_client_id, info[e].via_pk) for e in ("top", "mid", "leaf", "branch", "branch-leaf")] == [
        (10, 1), (10, 1), (10, 1), (20, 4), (20, 4)]
    assert (info["leaf"].depth, info["branch-leaf"].depth, info["orphan"].depth) == (2, 2, 0)
    assert info["top"].subtree_device_count == 15 and info["top"].unmapped_device_count is None
    assert info["other"].subtree_device_count == 48 and info["other"].unmapped_device_count == 16
    assert info["other"].device_count is None and info["orphan"].unmapped_device_count == 64


def test_cycles_and_self_parents_end_the_walk():
    info = tree_info([(1, "a", "b", None, 1), (2, "b", "a", None, 1), (3, "c", "c", 5, 1), (4, "d", "a", 7, 1)])
    assert info["c"].effective_client_id == 5 and info["c"].depth == 0
    assert info["a"].effective_client_id is None and info["b"].via_pk is None
    assert info["d"].effective_client_id == 7 and info["d"].via_external_id == "d"
