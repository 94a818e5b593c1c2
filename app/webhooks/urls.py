"""Which webhook URLs the server may call (server-side request forgery).

An API key holder could otherwise point an endpoint at the server's own
loopback, its cloud's metadata service (169.254.169.254, link-local) or the
private network behind it, and have Questline probe them. Outside
development, a URL whose host resolves to any such address is refused,
unless the operator lists the host in QUESTLINE_WEBHOOK_ALLOW_HOSTS (a
receiver on the business's own network). The check runs when an endpoint
is created or changed and again before sending, since a name can be
pointed elsewhere later.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from urllib.parse import urlsplit

from engine.errors import WebhookError, WebhookUrlRefusedError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def check_url(url: str, allow_hosts: Sequence[str], development: bool) -> None:
    """Raise WebhookError for a URL that is not http(s), WebhookUrlRefusedError for
    one pointing inside the server's network (blocking: it resolves the host)."""
    parts = urlsplit(url)
    host = parts.hostname
    if parts.scheme not in ("http", "https") or not host:
        raise WebhookError(f"a webhook URL must be http:// or https:// with a host, got {url!r}")
    if development or host in allow_hosts:
        return
    try:
        found = socket.getaddrinfo(host, parts.port or 443, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        raise WebhookError(
            f"the host of {url!r} cannot be resolved ({error}); use a name this server can resolve"
        ) from None
    for *_, address in found:
        ip = ipaddress.ip_address(address[0])
        if internal(ip):
            raise WebhookUrlRefusedError(
                f"{url!r} resolves to {ip}, an address inside this server's network; webhooks "
                "go to public addresses. An operator can allow the host with "
                "QUESTLINE_WEBHOOK_ALLOW_HOSTS"
            )


def internal(ip: IPAddress) -> bool:
    """Loopback, link-local, private, or otherwise not a public unicast address."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (
        ip.is_loopback
        or ip.is_link_local
        or ip.is_private
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
    )
