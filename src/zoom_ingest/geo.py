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


class RunAddresses:
    """The addresses whose zoom_ip_countries rows this run has merged already.

    The MERGE is insert-only on `ip_address`, so rows for those addresses would insert
    nothing: a later batch looks up and merges only the addresses new to the run (most
    sign-ins come from addresses seen earlier in the run). Only the committer thread
    uses it.

    Held as one Arrow array, not a set of Python strings: those strings lived for the
    whole run among the short-lived objects of the pages, so the interpreter could give
    back none of the memory pages they sat in, and the job's memory grew with the
    backfill (about 20 MiB over a 20-day backfill of a large account, issue 22)."""

    #: Past this many addresses the memory is given back (the MERGE still skips them):
    #: about 5 MiB of Arrow strings at most.
    LIMIT = 200_000

    def __init__(self) -> None:
        self._merged = pa.array([], pa.string())

    def new(self, activity: pa.Table) -> list[str]:
        """The distinct addresses of an activity_logs batch not merged in this run yet."""
        unique = pc.drop_null(pc.unique(activity.column("ip_address")))
        if len(self._merged):
            unique = unique.filter(pc.invert(pc.is_in(unique, value_set=self._merged)))
        return unique.to_pylist()

    def remember(self, addresses: list[str]) -> None:
        """`addresses` (as `new` gave them) are merged now."""
        if len(self._merged) + len(addresses) > self.LIMIT:
            self._merged = pa.array([], pa.string())
        self._merged = pa.concat_arrays([self._merged, pa.array(addresses, pa.string())])


def _is_public(address: str) -> bool:
    """`ipaddress.ip_address(address).is_global`, False when it is no address.

    A dotted-quad IPv4 address in the form `ipaddress` accepts (no leading zeros) is
    looked up in `_IPV4_GLOBAL` instead: building an `IPv4Address` and testing it
    against the special networks one by one cost about 15 µs, a sizeable share of the
    job's CPU per activity record (a batch brings tens of thousands of addresses). An
    IPv6 address (about a quarter of the simulator's, 35 µs each through `ipaddress`)
    is looked up in `_IPV6_GLOBAL` when it is plainly written: hex groups, at most one
    `::`, no zone (`%eth0`) and no dotted tail, the syntax `ipaddress` and inet_pton
    agree on; IPv4-mapped addresses (::ffff:0:0/96, judged by their IPv4 half) still go
    through `ipaddress`."""
    if _DOTTED_QUAD(address) is not None:
        number = int.from_bytes(socket.inet_aton(address), "big")
        return _IPV4_GLOBAL[bisect_right(_IPV4_STARTS, number) - 1]
    if _PLAIN_IPV6(address) is not None:
        try:
            number = int.from_bytes(socket.inet_pton(socket.AF_INET6, address), "big")
        except OSError:
            number = None
        if number is not None and number >> 32 != _IPV4_MAPPED_PREFIX:
            return _IPV6_GLOBAL[bisect_right(_IPV6_STARTS, number) - 1]
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return False
    return parsed.is_global


_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])"
_DOTTED_QUAD = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}").fullmatch
#: Hex groups of 1-4 digits separated by colons (inet_pton checks the rest: the count
#: of groups and a single `::`).
_PLAIN_IPV6 = re.compile(r"[0-9A-Fa-f:]{2,39}").fullmatch
#: ::ffff:0:0/96 without its last 32 bits.
_IPV4_MAPPED_PREFIX = 0xFFFF


def _global_ranges(
    address_type: type[ipaddress.IPv4Address] | type[ipaddress.IPv6Address],
) -> tuple[list[int], list[bool]]:
    """The address space cut at every edge of the networks `ipaddress` tests addresses
    of `address_type` against (its `_IPv4Constants` / `_IPv6Constants`, whatever this
    Python's version lists, and for IPv6 the IPv4-mapped block): each range's first
    address, and `is_global` for the whole range, asked of `ipaddress` itself on that
    first address. Within a range membership of every such network is the same, so
    `is_global` is too (IPv4-mapped addresses, judged by their IPv4 half, are not
    looked up in the IPv6 table)."""
    network_type = ipaddress.ip_network(address_type(0)).__class__
    bits = address_type(0).max_prefixlen
    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    extra = [ipaddress.IPv6Network("::ffff:0:0/96")] if bits == 128 else []
    for value in [*vars(type(address_type(0))._constants).values(), extra]:
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, address_type):
                item = network_type(item)
            if isinstance(item, network_type):
                networks.append(item)
    edges = {0}
    for network in networks:
        edges.add(int(network.network_address))
        edges.add(int(network.broadcast_address) + 1)
    starts = sorted(edge for edge in edges if edge < 2**bits)
    return starts, [address_type(start).is_global for start in starts]


_IPV4_STARTS, _IPV4_GLOBAL = _global_ranges(ipaddress.IPv4Address)
_IPV6_STARTS, _IPV6_GLOBAL = _global_ranges(ipaddress.IPv6Address)
