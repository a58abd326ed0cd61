"""Whether the phone is near the desktop it approves (RFC 10027, proximity): the same public
address, or both inside the company's own networks (``SSO_QR_TRUSTED_NETWORKS``).

An address is only what reached this server (through the trusted proxies, ``web.py``); the
desktop's is the desktop's claim as much as the phone's is the phone's. A mismatch is not
proof of an attack (a phone on mobile data next to an office PC), so it warns and asks for
the number instead of refusing, unless the app says to refuse.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

SAME, TRUSTED, DIFFERENT = "same", "trusted", "different"
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Proximity:
    kind: str
    desktop_network: str
    phone_network: str

    @property
    def far(self) -> bool:
        return self.kind == DIFFERENT


def parse_networks(value: str | Iterable[str] | None) -> list[Network]:
    """``SSO_QR_TRUSTED_NETWORKS``: CIDRs, comma-separated or a JSON list."""
    items = value.split(",") if isinstance(value, str) else list(value or ())
    return [ipaddress.ip_network(item.strip(), strict=False) for item in items if item.strip()]


def _address(ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(ip)
    except ValueError:
        return None


def _label(ip: str, trusted: list[Network]) -> str:
    """The network to name on the phone: the company network it is in, else its /24 (/48)."""
    address = _address(ip)
    if address is None:
        return ip or "?"
    for network in trusted:
        if address in network:
            return str(network)
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


def compare(desktop_ip: str, phone_ip: str, trusted: list[Network]) -> Proximity:
    desktop, phone = _address(desktop_ip), _address(phone_ip)
    labels = (_label(desktop_ip, trusted), _label(phone_ip, trusted))
    if desktop is not None and desktop == phone:
        return Proximity(SAME, *labels)
    if desktop is not None and phone is not None and any(desktop in n for n in trusted) \
            and any(phone in n for n in trusted):
        return Proximity(TRUSTED, *labels)
    return Proximity(DIFFERENT, *labels)
