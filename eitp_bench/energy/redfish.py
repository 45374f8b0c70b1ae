"""The whole node's input power from the BMC over Redfish (DMTF's REST interface).

Opt-in: set `EITP_BENCH_REDFISH_URL` to the BMC (`https://bmc`) or to one chassis
(`https://bmc/redfish/v1/Chassis/1`), with `EITP_BENCH_REDFISH_USER` / `EITP_BENCH_REDFISH_PASSWORD`
(HTTP basic authentication). Given the BMC alone, the first member of `/redfish/v1/Chassis` is read.
Of a chassis, the newer `EnvironmentMetrics` resource (`PowerWatts.Reading`) is preferred, else the
older `Power` resource (`PowerControl[0].PowerConsumedWatts`), else the sum of the power supplies' input
power under `PowerSubsystem` (`PowerSupplies/<n>/Metrics` → `InputPowerWatts.Reading`).

Certificates are verified; a BMC with its own certificate authority takes `EITP_BENCH_REDFISH_CA`
(a PEM file). Plain http is accepted (a local test server). The password, and any user:password
written inside the URL, never reach a message: every URL shown is the credential-free one.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import urllib.error
import urllib.request
from typing import Any, Optional
from urllib.parse import urljoin, urlsplit, urlunsplit

from eitp_bench.energy.base import MeterStatus
from eitp_bench.energy.node_power import NODE_DEVICE, NODE_DOMAIN, NodePowerMeter, NodeReadError, node_info

ENV_URL, ENV_USER, ENV_PASSWORD, ENV_CA = (
    "EITP_BENCH_REDFISH_URL", "EITP_BENCH_REDFISH_USER", "EITP_BENCH_REDFISH_PASSWORD", "EITP_BENCH_REDFISH_CA")
TIMEOUT_S = 5.0
FIX = (f"export {ENV_URL}=https://<bmc> (or …/redfish/v1/Chassis/<id>), {ENV_USER} and {ENV_PASSWORD}; "
       f"{ENV_CA}=<pem> for a BMC whose certificate is signed by its own authority")


def shown(url: str) -> str:
    """The URL without any user:password@ part: the only form a message may carry."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, ""))


class RedfishClient:
    """GET JSON from one BMC with basic authentication; every failure is a NodeReadError without secrets."""

    def __init__(self, url: str, user: Optional[str], password: Optional[str], ca_file: Optional[str] = None):
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise NodeReadError(f"{ENV_URL} must be an http(s) URL of the BMC, got {shown(url)!r}")
        user = user if user is not None else parts.username
        password = password if password is not None else parts.password
        self.base = shown(url)
        self._auth = None
        if user:
            token = base64.b64encode(f"{user}:{password or ''}".encode()).decode()
            self._auth = f"Basic {token}"
        self._context = None
        if parts.scheme == "https":
            try:
                self._context = ssl.create_default_context(cafile=ca_file)
            except (OSError, ssl.SSLError) as err:
                raise NodeReadError(f"cannot load {ENV_CA}: {err}") from None

    def get(self, path_or_url: str) -> dict[str, Any]:
        url = urljoin(self.base, path_or_url)
        request = urllib.request.Request(url, headers={"Accept": "application/json"})
        if self._auth:
            request.add_header("Authorization", self._auth)
        where = shown(url)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S, context=self._context) as response:
                body = response.read(1 << 20)
        except urllib.error.HTTPError as err:
            why = {401: f"authentication failed (check {ENV_USER} / {ENV_PASSWORD})",
                   403: f"access denied for that user (check {ENV_USER}'s role)",
                   404: "no such resource"}.get(err.code, f"HTTP {err.code}")
            raise NodeReadError(f"Redfish GET {where}: {why}") from None
        except urllib.error.URLError as err:
            raise NodeReadError(f"Redfish GET {where}: {_reason(err.reason)}") from None
        except (OSError, ValueError) as err:  # timeouts, resets, a malformed URL
            raise NodeReadError(f"Redfish GET {where}: {_reason(err)}") from None
        try:
            data = json.loads(body)
        except ValueError:
            raise NodeReadError(f"Redfish GET {where}: the answer is not JSON") from None
        if not isinstance(data, dict):
            raise NodeReadError(f"Redfish GET {where}: the answer is not a JSON object")
        return data


def _reason(reason: Any) -> str:
    if isinstance(reason, ssl.SSLCertVerificationError):
        return f"certificate not trusted ({reason.verify_message}); set {ENV_CA} to the BMC's CA file"
    return str(getattr(reason, "strerror", None) or reason)


def _link(resource: dict[str, Any], name: str) -> Optional[str]:
    value = resource.get(name)
    return value.get("@odata.id") if isinstance(value, dict) else None


def _members(client: RedfishClient, collection: str) -> list[str]:
    members = client.get(collection).get("Members") or []
    return [m["@odata.id"] for m in members if isinstance(m, dict) and isinstance(m.get("@odata.id"), str)]


def power_supply_metrics(client: RedfishClient, subsystem: str) -> list[str]:
    """The Metrics resources of every power supply under a PowerSubsystem."""
    supplies = _link(client.get(subsystem), "PowerSupplies")
    found = [_link(client.get(psu), "Metrics") for psu in (_members(client, supplies) if supplies else [])]
    if not all(found) or not found:
        raise NodeReadError(f"{subsystem}: no power supply with a Metrics resource")
    return found  # type: ignore[return-value]


def find_power_source(client: RedfishClient) -> tuple[str, str]:
    """(resource URL, kind) holding the chassis' power: "EnvironmentMetrics", "Power" or "PowerSubsystem"."""
    path = urlsplit(client.base).path.rstrip("/")
    if "/Chassis/" not in path:
        members = client.get("/redfish/v1/Chassis").get("Members") or []
        first = members[0].get("@odata.id") if members and isinstance(members[0], dict) else None
        if not first:
            raise NodeReadError("the BMC lists no chassis under /redfish/v1/Chassis")
        path = first
    chassis = client.get(path)
    for kind in ("EnvironmentMetrics", "Power", "PowerSubsystem"):
        link = _link(chassis, kind)
        if link:
            return link, kind
    raise NodeReadError(f"chassis {path} has no EnvironmentMetrics, Power or PowerSubsystem resource")


def parse_watts(resource: dict[str, Any], kind: str) -> float:
    """The node's watts from an EnvironmentMetrics or Power resource; NodeReadError when absent."""
    if kind == "EnvironmentMetrics":
        value = (resource.get("PowerWatts") or {}).get("Reading")
        where = "PowerWatts.Reading"
    elif kind == "PowerSupplyMetrics":
        value = (resource.get("InputPowerWatts") or {}).get("Reading")
        where = "InputPowerWatts.Reading"
    else:
        controls = resource.get("PowerControl") or [{}]
        value = controls[0].get("PowerConsumedWatts") if isinstance(controls[0], dict) else None
        where = "PowerControl[0].PowerConsumedWatts"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise NodeReadError(f"Redfish {kind}: {where} is {value!r}, not a number of watts")
    return float(value)


def read_watts(client: RedfishClient, resource: str, kind: str, supplies: list[str]) -> float:
    """The node's watts now: one GET, or one per power supply (their input power summed)."""
    if kind == "PowerSubsystem":
        return sum(parse_watts(client.get(metrics), "PowerSupplyMetrics") for metrics in supplies)
    return parse_watts(client.get(resource), kind)


class RedfishMeter(NodePowerMeter):
    name = "redfish"

    def __init__(self, client: Optional[RedfishClient] = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.client = client or client_from_env()
        self.resource, self.kind = find_power_source(self.client)
        self.supplies = power_supply_metrics(self.client, self.resource) if self.kind == "PowerSubsystem" else []

    def read_watts(self) -> float:
        return read_watts(self.client, self.resource, self.kind, self.supplies)

    def info(self) -> dict[str, Any]:
        return node_info(self, source=f"Redfish {self.kind}", resource=self.resource)

    @classmethod
    def probe(cls, env: Optional[dict[str, str]] = None, **_: Any) -> list[MeterStatus]:
        env = os.environ if env is None else env
        status = dict(meter=cls.name, device=NODE_DEVICE, domain=NODE_DOMAIN)
        if not env.get(ENV_URL):
            return [MeterStatus(**status, available=False,
                                reason=f"{ENV_URL} is not set (node power over Redfish is opt-in)", fix=FIX)]
        try:
            client = client_from_env(env)
            resource, kind = find_power_source(client)
            supplies = power_supply_metrics(client, resource) if kind == "PowerSubsystem" else []
            watts = read_watts(client, resource, kind, supplies)
        except NodeReadError as err:
            return [MeterStatus(**status, available=False, reason=str(err), fix=FIX)]
        return [MeterStatus(**status, available=True,
                            reason=f"Redfish {kind} at {shown(urljoin(client.base, resource))}: {watts:g} W now "
                                   "(whole node, sampled)",
                            details={"method": "sampled", "resource": resource})]


def client_from_env(env: Optional[dict[str, str]] = None) -> RedfishClient:
    env = os.environ if env is None else env
    return RedfishClient(env.get(ENV_URL, ""), env.get(ENV_USER), env.get(ENV_PASSWORD), env.get(ENV_CA) or None)
