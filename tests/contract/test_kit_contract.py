"""The test-only kit provider on the contract suite: a signed webhook provider built only from the kit."""

from __future__ import annotations

import json

import pytest

from tests.kit_provider.provider import KitProvider

from .base import SignatureContract

pytestmark = pytest.mark.django_db


def body(**kw) -> bytes:
    data = {"id": "k-1", "state": "open", "title": "CPU high", "severity": "sev2", "device": "d1", "check": "cpu",
            "org": "k1", "org_name": "Kit Org"}
    data.update(kw)
    return json.dumps(data).encode()


class TestKitContract(SignatureContract):
    slug = "kit"
    good_bodies = [body(), body(id=7, state="closed", severity=None), body(id="k-3", title="Ünïcode \"quoted\"")]

    def credentials(self, sim):
        return {"token": "kit-token-abcdef123456"}

    def two_devices(self):
        return body(id="a", device="d1"), body(id="b", device="d2")

    def signed_headers(self, body, secret):
        return {"x-kit-signature": KitProvider.signature_scheme.sign(body, secret)}
