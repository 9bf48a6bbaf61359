"""Enforce, inside the test process, the project rule that test traffic stays on loopback.

``loopback_only()`` patches the socket layer for its duration: connecting or sending a datagram to
an address that is not loopback (or the local unspecified address ``0.0.0.0``/``::``), and any name
lookup other than ``localhost``, raise ``NonLoopbackTraffic`` *before* a packet can leave (so no
query ever reaches the machine's nameserver either). It covers everything that goes through the
``socket`` module in this process (httpx, dnspython, the test servers' threads), not child
processes; those run in the test's own network namespaces.

``NonLoopbackTraffic`` is not an ``OSError``, so code that handles network errors does not swallow
it. Use it from a fixture::

    @pytest.fixture(autouse=True)
    def _loopback_only() -> Iterator[None]:
        with loopback_only():
            yield
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class NonLoopbackTraffic(AssertionError):
    """A test tried to reach something other than loopback."""


def _local_host(host: object) -> bool:
    if not isinstance(host, str):
        return False
    name = host.lower().rstrip(".")
    if name in ("", "localhost") or name.endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback or ip.is_unspecified


def _check(sock: socket.socket, address: Any) -> None:
    if sock.family in (socket.AF_INET, socket.AF_INET6) and not _local_host(address[0]):
        raise NonLoopbackTraffic(f"test traffic to {address!r} (only loopback is allowed)")


@contextmanager
def loopback_only() -> Iterator[None]:
    cls = socket.socket
    original = (cls.connect, cls.connect_ex, cls.sendto, socket.getaddrinfo)
    connect, connect_ex, sendto, getaddrinfo = original

    def guarded_connect(self: Any, address: Any) -> None:
        _check(self, address)
        connect(self, address)

    def guarded_connect_ex(self: Any, address: Any) -> int:
        _check(self, address)
        return connect_ex(self, address)

    def guarded_sendto(self: Any, data: Any, *args: Any) -> int:
        _check(self, args[-1])
        return sendto(self, data, *args)

    def guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None and not _local_host(host):
            raise NonLoopbackTraffic(f"test name lookup of {host!r} (only localhost is allowed)")
        return getaddrinfo(host, *args, **kwargs)

    cls.connect = guarded_connect  # type: ignore[method-assign]
    cls.connect_ex = guarded_connect_ex  # type: ignore[method-assign]
    cls.sendto = guarded_sendto  # type: ignore[method-assign]
    socket.getaddrinfo = guarded_getaddrinfo
    try:
        yield
    finally:
        cls.connect, cls.connect_ex, cls.sendto, socket.getaddrinfo = original  # type: ignore[method-assign]
