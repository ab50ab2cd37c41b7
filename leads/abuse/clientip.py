"""The visitor's IP address, believing ``X-Forwarded-For`` only when a trusted proxy sent it.

``client_ip(peer, forwarded_for, trusted)``:

- ``peer`` is the direct peer (``request.client.host``); if it is not in ``trusted``, it is
  the answer and ``X-Forwarded-For`` is ignored (anyone can write that header).
- Behind trusted proxies, the header is read from the right (each proxy appends the address
  it saw), skipping addresses of trusted proxies; the first untrusted address is the client.
  Entries further left were written by the client and are never believed.
- An entry that is not an IP address (``unknown``, an obfuscated nginx name, garbage) stops
  the walk: what lies to its left cannot be vouched for, so the answer is ``None``.
- ``None`` also when there is no peer (a Unix socket) or every address is a trusted proxy
  (e.g. a load balancer's own health check): callers treat ``None`` as "unknown client".

Addresses are returned in canonical form: IPv4-mapped IPv6 (``::ffff:192.0.2.1``) becomes
IPv4, ports (``192.0.2.1:1234``, ``[2001:db8::1]:443``) and IPv6 zone ids are dropped.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_FORWARDED_ENTRIES = 32  # a longer header is someone's garbage, not a proxy chain


def parse_networks(values: Iterable[str]) -> tuple[IPNetwork, ...]:
    """``LEADS_TRUSTED_PROXIES`` entries (CIDRs or single addresses) as networks."""
    return tuple(ipaddress.ip_network(value.strip(), strict=False) for value in values)


def client_ip(
    peer: str | None, forwarded_for: str | None, trusted: Sequence[IPNetwork]
) -> str | None:
    """The client's address as text, or ``None`` when it cannot be known."""
    peer_ip = parse_ip(peer) if peer else None
    if peer_ip is None:
        return None
    if not _is_trusted(peer_ip, trusted):
        return str(peer_ip)
    entries = (forwarded_for or "").split(",")[-MAX_FORWARDED_ENTRIES:]
    for entry in reversed(entries):
        if not entry.strip():
            continue  # "a, , b": an empty element, as some proxies write
        address = parse_ip(entry)
        if address is None:
            return None
        if not _is_trusted(address, trusted):
            return str(address)
    return None


def parse_ip(text: str) -> IPAddress | None:
    """One address as a proxy or server writes it, or ``None`` when it is not one."""
    text = text.strip().strip('"')
    if text.startswith("["):  # [v6] or [v6]:port
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:  # v4:port
        text = text.partition(":")[0]
    text = text.partition("%")[0]  # IPv6 zone id
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _is_trusted(address: IPAddress, trusted: Sequence[IPNetwork]) -> bool:
    forms: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv4Address):  # also as written in an IPv6 network
        forms.append(ipaddress.IPv6Address(b"\0" * 10 + b"\xff\xff" + address.packed))
    return any(a.version == net.version and a in net for a in forms for net in trusted)
