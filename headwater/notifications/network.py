"""Refusing private network addresses for notifications (``allow_private_urls=False``).

A notification URL can come from anyone who may save a block, and the process that sends it
often sits inside a private network: an unchecked URL turns it into a proxy towards internal
services (SSRF). With ``allow_private_urls=False`` a delivery is refused twice:

- before the request, when the URL's host is, or resolves to, a non-public address;
- again at connect time, for every connection made while delivering.

The connect-time check is an audit hook (:func:`sys.addaudithook`) on ``socket.connect`` and
``socket.sendto``: it sees the very address each socket is about to reach, whatever library
opened it (urllib3 under apprise's HTTP plugins and our webhook, smtplib, raw sockets), so a
DNS answer that changes between the check and the connection (DNS rebinding) or a redirect
towards an internal host cannot slip through. The hook is installed once, on the first guarded
delivery, and acts only inside :func:`refuse_private_addresses`, which is scoped with a context
variable; for every other audited operation it returns after one comparison.
"""

from __future__ import annotations

import ipaddress
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

__all__ = [
    "ConnectionGuard",
    "PrivateAddressRefused",
    "first_private_address",
    "is_public_address",
    "refuse_private_addresses",
]

# RFC 6598 shared address space: neither private nor reachable on the Internet.
_SHARED = ipaddress.ip_network("100.64.0.0/10")


class PrivateAddressRefused(OSError):
    """Raised inside a connection attempt to a non-public address; apprise and requests treat
    it as a connection error, and the delivery reports it from the guard."""


class ConnectionGuard:
    """What one guarded delivery refused: the addresses, in order."""

    def __init__(self) -> None:
        self.refused: list[str] = []


_active: ContextVar[ConnectionGuard | None] = ContextVar("headwater_connection_guard", default=None)
_install_lock = threading.Lock()
_installed = False
_SOCKET_EVENTS = frozenset({"socket.connect", "socket.sendto"})


def is_public_address(text: str) -> bool:
    """Whether ``text`` is an ordinary public unicast IP address (False for non-addresses)."""
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return is_public_address(str(address.ipv4_mapped))
    return not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_reserved
        or address.is_unspecified
        or address.is_multicast
        or (isinstance(address, ipaddress.IPv6Address) and address.is_site_local)
        or (isinstance(address, ipaddress.IPv4Address) and address in _SHARED)
    )


def _resolve(host: str, port: int | None) -> list[str]:
    host = host.strip("[]")
    infos = socket.getaddrinfo(host, port or 0, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def first_private_address(host: str, port: int | None = None) -> str | None:
    """The first non-public address ``host`` is or resolves to, else None.

    A host that does not resolve gives None: the delivery will fail on its own, with its
    own reason. Blocking (DNS): call it off the event loop.
    """
    try:
        addresses = _resolve(host, port)
    except (OSError, UnicodeError):
        return None
    for address in addresses:
        if not is_public_address(address):
            return address
    return None


@contextmanager
def refuse_private_addresses() -> Iterator[ConnectionGuard]:
    """Refuse every connection to a non-public address made in this context (this thread,
    or tasks and worker threads that copy its context)."""
    _install()
    guard = ConnectionGuard()
    token = _active.set(guard)
    try:
        yield guard
    finally:
        _active.reset(token)


def _install() -> None:
    global _installed
    with _install_lock:
        if not _installed:
            sys.addaudithook(_audit)
            _installed = True


def _audit(event: str, args: tuple[Any, ...]) -> None:
    # Called for every audited operation of the process once installed: keep the common
    # path to one comparison.
    if event not in _SOCKET_EVENTS:
        return
    guard = _active.get()
    if guard is None:
        return
    address = args[1]
    if not isinstance(address, tuple) or not address or not isinstance(address[0], str):
        return  # AF_UNIX paths and other non-IP families reach no remote host
    host = address[0]
    try:
        candidates = [host] if _is_address(host) else _resolve(host, address[1])
    except OSError:
        return  # the connection fails by itself
    for candidate in candidates:
        if not is_public_address(candidate):
            guard.refused.append(candidate)
            raise PrivateAddressRefused(
                f"refused to connect to the non-public address {candidate} "
                "(allow_private_urls=False)"
            )


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return False
    return True
