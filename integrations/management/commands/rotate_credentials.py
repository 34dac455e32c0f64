"""Re-encrypt every integration's credentials and webhook secret under the newest key.

Put the new key first in PSA_CREDENTIAL_KEYS (keep the old ones after it), run this,
then remove the old keys. Resumable: rows already on the newest key are skipped, and
each row is rewritten in its own transaction.
"""

from __future__ import annotations

from cryptography.fernet import InvalidToken
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from integrations import crypto
from integrations.models import Integration

FIELDS = ("credentials_ciphertext", "webhook_secret_ciphertext", "token_ciphertext")


class Command(BaseCommand):
    help = "Re-encrypt integration credentials and webhook secrets under the newest PSA_CREDENTIAL_KEYS key."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Only count what would be re-encrypted.")

    def handle(self, *args, dry_run: bool = False, **opts):
        rotated = current = failed = 0
        # Cross-tenant on purpose: this is an operator's maintenance command.
        ids = list(Integration.objects.unscoped().order_by("pk").values_list("pk", flat=True))
        for pk in ids:
            try:
                changed = self._rotate_row(pk, dry_run)
            except (InvalidToken, ValueError, crypto.CredentialDecryptError):
                failed += 1
                row = Integration.objects.unscoped().filter(pk=pk).values("provider", "tenant_id").first() or {}
                self.stderr.write(
                    f"integration {pk} ({row.get('provider')}, tenant {row.get('tenant_id')}): "
                    "cannot be decrypted with the configured keys; left unchanged"
                )
                continue
            if changed:
                rotated += 1
            else:
                current += 1
        verb = "would rotate" if dry_run else "rotated"
        self.stdout.write(f"{verb} {rotated}, {current} already on the newest key, {failed} failed")
        if failed:
            raise CommandError(f"{failed} integration(s) could not be re-encrypted; keep the old keys for now.")

    def _rotate_row(self, pk: int, dry_run: bool) -> bool:
        with transaction.atomic():
            row = Integration.objects.unscoped().select_for_update().filter(pk=pk).first()
            if row is None:
                return False
            changes = {
                field: crypto.rotate(value)
                for field in FIELDS
                if (value := getattr(row, field)) and crypto.needs_rotation(value)
            }
            if changes and not dry_run:
                Integration.objects.unscoped().filter(pk=pk).update(**changes)
            return bool(changes)
