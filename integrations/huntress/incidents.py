"""Turning Huntress incident reports into complete IncidentRecords within the request budget.

A REST report names its organization and agent by id only, and carries its first 10
remediations. The reader adds the organization's name (one list of all organizations per pass,
500 a page, or one lookup for a single report), the host's name and serial (per agent, or one
list of all agents when that costs fewer requests), and the full remediation list when
Huntress says there are more.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator
from typing import Any

from integrations.coerce import as_dict, int_id, str_id, text
from integrations.errors import NotFound, PermissionDenied
from integrations.records import IncidentRecord

from . import normalize
from .client import MAX_PAGE, HuntressClient

log = logging.getLogger("integrations.huntress")


class OrgIndex:
    """Organization names by id: all of them at once for a pass, or one at a time."""

    def __init__(self, client: HuntressClient):
        self.client = client
        self.names: dict[str, str] = {}
        self.loaded = False
        self.agent_total: int | None = None

    def load(self) -> None:
        if self.loaded:
            return
        total = 0
        for row in self.client.organizations():
            org_id = str_id(row.get("id"))
            if org_id:
                self.names[org_id] = text(row.get("name"), 255)
                total += int_id(row.get("agents_count")) or 0
        self.agent_total = total
        self.loaded = True

    def name(self, org_id: str | None) -> str:
        if not org_id:
            return ""
        if org_id not in self.names and not self.loaded:
            try:
                self.names[org_id] = text(self.client.organization(org_id).get("name"), 255)
            except (NotFound, PermissionDenied):
                self.names[org_id] = ""  # deleted or out of reach: the router shows the id
        return self.names.get(org_id, "")


class HostIndex:
    """(hostname, serial) by agent id. Fetches agents one by one, unless listing every agent (at 500
    a page) would take fewer requests than the agents still unknown."""

    def __init__(self, client: HuntressClient, orgs: OrgIndex):
        self.client = client
        self.orgs = orgs
        self.hosts: dict[str, tuple[str, str]] = {}
        self.listed = False

    def _list_all(self) -> None:
        for row in self.client.agents():
            agent_id = str_id(row.get("id"))
            if agent_id:
                self.hosts[agent_id] = _host(row)
        self.listed = True

    def prefetch(self, agent_ids: Iterable[str | None]) -> None:
        missing = {a for a in agent_ids if a and a not in self.hosts}
        total = self.orgs.agent_total
        if missing and not self.listed and total is not None and len(missing) > max(1, math.ceil(total / MAX_PAGE)):
            self._list_all()
            missing -= self.hosts.keys()
        # Still unknown (new since the list, or gone): one lookup each, remembered either way.
        for agent_id in missing:
            row = self.client.agent(agent_id)
            self.hosts[agent_id] = _host(row) if row else ("", "")

    def get(self, agent_id: str | None) -> tuple[str, str]:
        if not agent_id:
            return "", ""
        if agent_id not in self.hosts:
            self.prefetch([agent_id])
        return self.hosts.get(agent_id, ("", ""))


def _host(row: dict[str, Any]) -> tuple[str, str]:
    return text(row.get("hostname"), 255), text(row.get("serial_number"), 255)


class IncidentReader:
    def __init__(self, client: HuntressClient, portal_base: str = ""):
        self.client = client
        self.portal_base = portal_base
        self.orgs = OrgIndex(client)
        self.hosts = HostIndex(client, self.orgs)

    def _record(self, row: dict[str, Any], org_name: str = "") -> IncidentRecord | None:
        org_id = str_id(row.get("organization_id")) or str_id(as_dict(row.get("organization")).get("id"))
        host_name, serial = self.hosts.get(str_id(row.get("agent_id")))
        record = normalize.incident(
            row, organization_name=org_name or self.orgs.name(org_id), host_name=host_name, host_serial=serial,
            portal_base=self.portal_base,
        )
        if record is None:
            return None
        _, _, complete = normalize.remediations(row.get("remediations"))
        if not complete:  # Huntress sends the first 10: fetch the rest
            rows = list(self.client.remediations(record.external_id))
            items = [r for r in (normalize.remediation(x) for x in rows) if r is not None]
            record.remediations, record.remediations_total = items, len(items)
        return record

    def records(self, pages: Iterable[list[dict[str, Any]]]) -> Iterator[IncidentRecord]:
        """Records of report pages; names and hosts are looked up a page at a time."""
        for page in pages:
            self.orgs.load()
            self.hosts.prefetch(str_id(row.get("agent_id")) for row in page)
            for row in page:
                record = self._record(row)
                if record is not None:
                    yield record
                else:
                    log.info("huntress incident report without an id skipped")

    def one(self, report_id: str, *, org_name: str = "") -> IncidentRecord:
        row = self.client.incident_report(report_id)
        record = self._record(row, org_name)
        if record is None:
            raise NotFound(f"Huntress answered incident report {report_id} without an id.")
        return record
