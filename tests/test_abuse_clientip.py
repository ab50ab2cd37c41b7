"""The client's address, from X-Forwarded-For only behind trusted proxies."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from pydantic import ValidationError

from leads.abuse.clientip import IPNetwork, client_ip, parse_networks
from leads.settings import Settings

PROXIES = parse_networks(["10.0.0.0/8", "2001:db8:ffff::/48", "192.0.2.1"])


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        # An untrusted peer is the client, whatever the header claims.
        ("203.0.113.7", "198.51.100.1", "203.0.113.7"),
        ("203.0.113.7", None, "203.0.113.7"),
        # Behind one proxy: the rightmost address is the one it saw.
        ("10.0.0.2", "198.51.100.1", "198.51.100.1"),
        # Behind two proxies; the client tried to forge its address on the left.
        ("10.0.0.2", "1.2.3.4, 198.51.100.1, 192.0.2.1", "198.51.100.1"),
        ("10.0.0.2", "10.9.9.9, 198.51.100.1", "198.51.100.1"),
        # Forms proxies write: ports, brackets, spaces, empty elements, mapped IPv4.
        ("10.0.0.2", " 198.51.100.1:51234 ", "198.51.100.1"),
        ("10.0.0.2", "[2001:db8::1]:443", "2001:db8::1"),
        ("10.0.0.2", "2001:DB8::1", "2001:db8::1"),
        ("10.0.0.2", "198.51.100.1, ,", "198.51.100.1"),
        ("::ffff:10.0.0.2", "::ffff:198.51.100.1", "198.51.100.1"),
        ("2001:db8:ffff::5", "198.51.100.1", "198.51.100.1"),
        # Nothing to believe.
        ("10.0.0.2", None, None),
        ("10.0.0.2", "", None),
        ("10.0.0.2", "10.0.0.3, 192.0.2.1", None),
        ("10.0.0.2", "198.51.100.1, unknown", None),  # left of garbage is unvouched for
        ("10.0.0.2", "_hidden", None),
        (None, "198.51.100.1", None),
        ("testclient", "198.51.100.1", None),
    ],
)
def test_examples(peer: str | None, forwarded: str | None, expected: str | None) -> None:
    assert client_ip(peer, forwarded, PROXIES) == expected


def test_without_trusted_proxies_the_header_is_ignored() -> None:
    assert client_ip("10.0.0.2", "198.51.100.1", ()) == "10.0.0.2"


def test_parse_networks_takes_single_addresses_and_host_bits() -> None:
    assert [str(n) for n in parse_networks([" 10.1.2.3/8", "::1"])] == ["10.0.0.0/8", "::1/128"]


addresses = st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6))
networks = st.one_of(
    st.builds(
        lambda a, p: ipaddress.ip_network(f"{a}/{p}", strict=False),
        st.ip_addresses(v=4),
        st.integers(8, 32),
    ),
    st.builds(
        lambda a, p: ipaddress.ip_network(f"{a}/{p}", strict=False),
        st.ip_addresses(v=6),
        st.integers(16, 128),
    ),
)
garbage = st.text(max_size=40)


def in_any(address: str, trusted: list[IPNetwork]) -> bool:
    ip = ipaddress.ip_address(address)
    forms = [ip, ipaddress.ip_address(f"::ffff:{ip}")] if ip.version == 4 else [ip]
    return any(f.version == n.version and f in n for f in forms for n in trusted)


@given(
    trusted=st.lists(networks, max_size=4),
    peer=st.one_of(st.none(), addresses.map(str), garbage),
    entries=st.lists(st.one_of(addresses.map(str), garbage), max_size=8),
    trusted_picks=st.lists(st.integers(0, 3), max_size=4),
)
def test_never_a_trusted_proxy_and_never_raises(
    trusted: list[IPNetwork], peer: str | None, entries: list[str], trusted_picks: list[int]
) -> None:
    # Mix in addresses that are inside the trusted networks, so the walk has work to do.
    for pick in trusted_picks:
        if trusted:
            entries.append(str(trusted[pick % len(trusted)].network_address))
    result = client_ip(peer, ", ".join(entries), trusted)
    if result is not None:
        assert not in_any(result, trusted)
        assert str(ipaddress.ip_address(result)) == result  # canonical text


@given(trusted=st.lists(networks, min_size=1, max_size=3), client=addresses)
def test_the_client_behind_a_chain_of_trusted_proxies_is_found(
    trusted: list[IPNetwork], client: ipaddress.IPv4Address | ipaddress.IPv6Address
) -> None:
    proxies = [str(n.network_address) for n in trusted]
    result = client_ip(proxies[0], ", ".join(["6.6.6.6", str(client), *proxies]), trusted)
    expected = client.ipv4_mapped if client.version == 6 and client.ipv4_mapped else client
    assume(not in_any(str(expected), trusted))  # a client inside a proxy's network is skipped
    assert result == str(expected)


def test_the_setting_takes_addresses_and_cidrs() -> None:
    settings = Settings(_env_file=None, trusted_proxies=" 10.0.0.0/8, 192.0.2.1,,::1 ")  # type: ignore[call-arg]
    assert settings.trusted_proxies == ("10.0.0.0/8", "192.0.2.1/32", "::1/128")
    assert parse_networks(settings.trusted_proxies) == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("192.0.2.1/32"),
        ipaddress.ip_network("::1/128"),
    )
    with pytest.raises(ValidationError, match="CIDRs"):
        Settings(_env_file=None, trusted_proxies="10.0.0.0/8, proxy.internal")  # type: ignore[call-arg]
