"""The framework's field mapping (integrations/services/fieldmap.py): validation, paths, values."""

from __future__ import annotations

import pytest

from integrations.base import Provider
from integrations.services import fieldmap

DEVICE = {
    "hostname": "HDG-FRONT-01",
    "serial_number": "7XK2M93",
    "role": "Workstation",
    "operating_system": {"full_operating_system": "Windows 11 Pro", "major_version": 11, "end_of_life": False},
    "cpus": [{"model": "Intel i5", "cores": 12}],
    "disk_partitions": [{"label": "OS", "mount_point": "C:", "size": 255013683200, "free_space": 18874368000}],
    "network_interfaces": [
        {"mac_address": "3C:52:82:AA:10:4F", "ip_addresses": ["10.20.1.44", "fe80::1"]},
        {"mac_address": "3C:52:82:AA:10:50", "ip_addresses": ["10.20.2.7"]},
        {"label": "no mac"},
    ],
    "customFields": {"warrantyEnd": "2027-01-31", "assetTag": "  ", "notes": None},
    "tags": ["dental", "windows"],
    "security_score": 82.0,
    "nan": float("nan"),
    "unicode": "Poste « 7 » \x00",
    "huge": [{"x": "y" * 100} for _ in range(200)],
}


class Declared(Provider):
    slug = "declared"
    name = "Declared"
    default_field_mapping = {"attr.tags": "tags", "attr.cpu": "cpus.0.model"}


def test_clean_accepts_targets_and_paths_and_reports_every_problem():
    cleaned, errors = fieldmap.clean({
        "serial_number": " customFields.assetTag ", "attr.warranty_end": "customFields.warrantyEnd",
        "attr.macs": "network_interfaces.*.mac_address", "attr.off": "", "os": None,
    })
    assert errors == []
    assert cleaned == {"serial_number": "customFields.assetTag", "attr.warranty_end": "customFields.warrantyEnd",
                       "attr.macs": "network_interfaces.*.mac_address", "attr.off": "", "os": ""}
    _, errors = fieldmap.clean({"colour": "x", "attr.Bad": "x", "attr.a__b": "x", "attr.ok": "a..b",
                                "attr.ok2": "has space", "attr.ok3": 5, "attr.ok4": "x" * 201})
    assert len(errors) == 7
    assert fieldmap.clean(["not", "a", "map"])[1] and fieldmap.clean({f"attr.a{i}": "x" for i in range(101)})[1]


def test_effective_overlays_the_provider_defaults():
    assert fieldmap.effective(Declared, {}) == {"attr.tags": "tags", "attr.cpu": "cpus.0.model"}
    overlay = {"field_mapping": {"attr.tags": "", "attr.warranty": "customFields.warrantyEnd"}}
    assert fieldmap.effective(Declared, overlay) == {"attr.cpu": "cpus.0.model",
                                                    "attr.warranty": "customFields.warrantyEnd"}


@pytest.mark.parametrize("path, found, value", [
    ("operating_system.full_operating_system", True, "Windows 11 Pro"),
    ("cpus.0.model", True, "Intel i5"),
    ("cpus.5.model", False, None),
    ("network_interfaces.*.mac_address", True, ["3C:52:82:AA:10:4F", "3C:52:82:AA:10:50"]),
    ("network_interfaces.*.ip_addresses", True, ["10.20.1.44", "fe80::1", "10.20.2.7"]),  # flattened once
    ("network_interfaces.*.gateway", False, []),
    ("customFields.notes", False, None),  # null is "not there"
    ("operating_system.end_of_life", True, False),  # false is a value
    ("hostname.length", False, None),
    ("missing", False, None),
])
def test_lookup(path, found, value):
    assert fieldmap.lookup(DEVICE, path) == (found, value)


def test_apply_standard_fields_attributes_and_why_an_entry_was_not_used():
    mapped = fieldmap.apply({
        "serial_number": "customFields.assetTag",  # blank: the provider's own value stays
        "asset_type": "role",  # "Workstation" -> workstation
        "platform": "operating_system.full_operating_system",
        "make_model": "cpus.*.model",
        "attr.warranty_end": "customFields.warrantyEnd",
        "attr.disks": "disk_partitions",
        "attr.score": "security_score",
        "attr.eol": "operating_system.end_of_life",
        "attr.nan": "nan",
        "attr.huge": "huge",
        "attr.name": "unicode",
        "attr.none": "customFields.notes",
        "os": "",  # switched off: ignored
    }, DEVICE)
    assert mapped.fields == {"asset_type": "workstation", "platform": "windows 11 pro", "make_model": "Intel i5"}
    assert mapped.attributes == {
        "warranty_end": "2027-01-31", "disks": DEVICE["disk_partitions"], "score": 82.0, "eol": False,
        "name": "Poste « 7 »",
    }
    notes = {row["target"]: row for row in mapped.sources}
    assert "os" not in notes
    assert notes["serial_number"]["found"] and not notes["serial_number"]["used"]
    assert "over 8192 bytes" in notes["attr.huge"]["note"] and not notes["attr.nan"]["used"]
    assert notes["attr.none"]["note"] == "Not in this device's record."


def test_asset_type_must_be_one_of_ours():
    mapped = fieldmap.apply({"asset_type": "tags"}, DEVICE)  # "dental, windows"
    assert mapped.fields == {} and "Not an asset type" in mapped.sources[0]["note"]


def test_available_paths_lists_nested_keys_and_list_items():
    paths = fieldmap.available_paths(DEVICE)
    for path in ("operating_system.full_operating_system", "cpus.*.model", "cpus.0.model",
                 "network_interfaces.*.mac_address", "customFields.warrantyEnd", "tags", "tags.0"):
        assert path in paths
    assert len(fieldmap.available_paths({f"k{i}": i for i in range(1000)}, limit=50)) == 50
