import json
import os

from django.core.management.base import BaseCommand, CommandError

from psa.services.demo import DEMO_PASSWORD, seed_demo


class Command(BaseCommand):
    help = "Seed (idempotently) the 'Demo MSP' tenant and print the URL, admin login and API token. Run migrate first."

    def add_arguments(self, parser):
        parser.add_argument("--url", default="", help="Base URL to print (default PSA_PUBLIC_BASE_URL or http://127.0.0.1:$PORT/)")
        parser.add_argument("--password", default=os.environ.get("PSA_DEMO_PASSWORD", DEMO_PASSWORD))

    def handle(self, *args, **opts):
        try:
            demo = seed_demo(password=opts["password"])
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        url = (opts["url"] or os.environ.get("PSA_PUBLIC_BASE_URL") or f"http://127.0.0.1:{os.environ.get('PORT', '8000')}").rstrip("/")
        w = self.stdout.write
        w(("Created" if demo.created else "Refreshed") + f" demo tenant {demo.tenant.name!r}.")
        w(f"  URL:        {url}/")
        w(f"  Login:      {demo.email}")
        w(f"  Password:   {demo.password}")
        w(f"  API token:  {demo.api_token}")
        w(f"  Try:        curl -H 'Authorization: Token {demo.api_token}' {url}/api/v1/tickets/")
        w(json.dumps({"url": url + "/", "email": demo.email, "password": demo.password,
                      "api_token": demo.api_token, "tenant_id": demo.tenant.pk}))
