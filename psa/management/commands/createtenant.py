import json

from django.core.management.base import BaseCommand, CommandError

from psa.services.tenants import TenantExists, create_tenant


class Command(BaseCommand):
    help = "Create a tenant with its admin user, default boards/statuses/priorities and an API token."

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True)
        parser.add_argument("--admin-email", required=True)
        parser.add_argument("--admin-password", required=True)

    def handle(self, *args, **opts):
        try:
            created = create_tenant(opts["name"], opts["admin_email"], opts["admin_password"])
        except (TenantExists, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Created tenant {created.tenant.name!r} with admin {created.user.email}")
        self.stdout.write(
            json.dumps({"tenant_id": created.tenant.pk, "user_id": created.user.pk, "api_token": created.api_token})
        )
