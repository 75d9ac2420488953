"""IP address → country, offline, for the `zoom_ip_countries` enrichment table.

The lookup is `iptocc` (PyPI): IPv4 and IPv6 to ISO 3166-1 alpha-2 codes from the five
Regional Internet Registries' allocation files, compiled into the wheel (about 1.8 MB,
no data file, no network at run time, close to a million lookups a second). The country
is the one the address block is *registered* to, which matches where it is used for about
95% of IPv4 addresses; VPNs, cloud exits and mobile roaming blur it further.

The job fills the table for the addresses each run brings in (both engines, the same
Arrow rows); the country detections join activity_logs to it.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from bisect import bisect_right
from collections.abc import Iterable
from datetime import datetime
from functools import cache
from importlib.metadata import PackageNotFoundError, version

import pyarrow as pa
import pyarrow.compute as pc

from .tables import IP_COUNTRIES, UTC


@cache
def database_version() -> str:
    """The lookup database's name and version, stored with every row (`db_version`)."""
    try:
        return f"iptocc {version('iptocc')}"
    except PackageNotFoundError:  # pragma: no cover - a runtime dependency
        return "iptocc (unknown version)"


def countries(addresses: Iterable[str]) -> dict[str, str | None]:
    """address → ISO country code (None: private, reserved, malformed or unallocated)."""
    from iptocc import country_code

    unique = sorted({a for a in addresses if isinstance(a, str)})
    usable = [a for a in unique if _is_public(a)]
    found = dict(zip(usable, country_code(usable), strict=True)) if usable else {}
    return {a: found.get(a) for a in unique}


def ip_country_rows(addresses: Iterable[str | None], now: datetime | None = None) -> pa.Table:
    """zoom_ip_countries rows for the distinct non-empty addresses, sorted by address."""
    looked_up_at = (now or datetime.now(UTC)).astimezone(UTC)
    mapping = countries(a.strip() for a in addresses if isinstance(a, str) and a.strip())
    return pa.Table.from_pydict(
        {
            "ip_address": list(mapping),
            "country": list(mapping.values()),
            "looked_up_at": [looked_up_at] * len(mapping),
            "db_version": [database_version()] * len(mapping),
        },
        schema=IP_COUNTRIES.schema,
    )


def ip_country_rows_for(activity: pa.Table, now: datetime | None = None) -> pa.Table:
    """The zoom_ip_countries rows for the addresses of an activity_logs batch."""
    column = activity.column("ip_address")
    return ip_country_rows(pc.unique(column).to_pylist(), now)


def _is_public(address: str) -> bool:
    """`ipaddress.ip_address(address).is_global`, False when it is no address.

    A dotted-quad IPv4 address in the form `ipaddress` accepts (no leading zeros) is
    looked up in `_IPV4_GLOBAL` instead: building an `IPv4Address` and testing it
    against the special networks one by one cost about 15 µs, a sizeable share of the
    job's CPU per activity record (a batch brings tens of thousands of addresses)."""
    if _DOTTED_QUAD(address) is not None:
        number = int.from_bytes(socket.inet_aton(address), "big")
        return _IPV4_GLOBAL[bisect_right(_IPV4_STARTS, number) - 1]
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return False
    return parsed.is_global


_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])"
_DOTTED_QUAD = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}").fullmatch


def _ipv4_global_ranges() -> tuple[list[int], list[bool]]:
    """The IPv4 space cut at every edge of the networks `ipaddress` tests addresses
    against (its `_IPv4Constants`, whatever this Python's version lists): each range's
    first address, and `is_global` for the whole range, asked of `ipaddress` itself on
    that first address. Within a range membership of every such network is the same, so
    `is_global` is too."""
    networks: list[ipaddress.IPv4Network] = []
    for value in vars(type(ipaddress.IPv4Address(0))._constants).values():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, ipaddress.IPv4Address):
                item = ipaddress.IPv4Network(item)
            if isinstance(item, ipaddress.IPv4Network):
                networks.append(item)
    edges = {0}
    for network in networks:
        edges.add(int(network.network_address))
        edges.add(int(network.broadcast_address) + 1)
    starts = sorted(edge for edge in edges if edge < 2**32)
    return starts, [ipaddress.IPv4Address(start).is_global for start in starts]


_IPV4_STARTS, _IPV4_GLOBAL = _ipv4_global_ranges()
