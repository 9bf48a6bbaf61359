"""A real DNS server on ``127.0.0.1:0``, UDP and TCP on the same port, built on dnspython.

Reproduces the name-resolution failures behind ``docs/failure-modes.md`` scenarios S04 and
S10 and the ``::1`` ordering of S11 for probes that query DNS themselves
(``dns.resolver.Resolver(configure=False)`` pointed here) or, inside a test network namespace, for
the system resolver (run it on port 53 with ``python -m tests.support.dns_server`` under
``Netns.start_server``; glibc cannot use another port).

Answers, per name (case-insensitive; the records given are the whole world):

- present with the asked type → NOERROR with the records; CNAME chains are followed within the
  records (the answer holds the chain, then the target's records);
- present without the asked type → NOERROR with an empty answer and an SOA (NODATA);
- absent (or a CNAME to an absent name) → NXDOMAIN with an SOA in the authority section;
- in ``servfail`` → SERVFAIL; in ``slow`` → answered after that many seconds; in ``drop`` → never
  answered (the client's resolver times out).

Responses are authoritative and recursion-available, like a local resolver's. UDP answers larger
than the client's buffer (512 bytes, or its EDNS size) are truncated with TC set.
"""

from __future__ import annotations

import argparse
import errno
import json
import selectors
import signal
import socket
import sys
import threading
from collections.abc import Iterable, Mapping, Sequence
from types import FrameType, TracebackType
from typing import Literal, NamedTuple

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from tests.support._server import THREAD_PREFIX, ThreadedTCPServer, ThreadTracker

Transport = Literal["udp", "tcp"]
MAX_CNAME_CHAIN = 8


class DNSQuery(NamedTuple):
    name: str  # lower-cased, absolute: "ollama.test."
    rdtype: str  # "A", "AAAA", ...
    transport: Transport


def _key(name: str | dns.name.Name) -> str:
    text = name.to_text() if isinstance(name, dns.name.Name) else name
    text = text.lower()
    return text if text.endswith(".") else text + "."


class _TCPSide(ThreadedTCPServer):
    def __init__(self, owner: DNSServer, host: str, port: int) -> None:
        super().__init__("dns-tcp", host, port)
        self._owner = owner

    def handle(self, conn: socket.socket, peer: tuple[str, int]) -> None:
        conn.settimeout(self._owner.tcp_timeout)
        while True:
            prefix = _recv_exact(conn, 2)
            if prefix is None:
                return
            wire = _recv_exact(conn, int.from_bytes(prefix, "big"))
            if wire is None:
                return
            reply = self._owner.answer(wire, "tcp", 65535, self.tracker)
            if reply is None:
                continue  # dropped: the client waits for its own timeout
            conn.sendall(len(reply).to_bytes(2, "big") + reply)


def _recv_exact(conn: socket.socket, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


class DNSServer:
    """DNS server for tests; see the module docstring."""

    tcp_timeout = 10.0
    join_timeout = 5.0

    def __init__(
        self,
        records: Mapping[str, Sequence[tuple[str, str]]],
        *,
        servfail: Iterable[str] = (),
        slow: Mapping[str, float] | None = None,
        drop: Iterable[str] = (),
        ttl: int = 60,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        """``records``: name → [(type, rdata text)], e.g. ``{"a.test.": [("A", "127.0.0.1")]}``.

        ``host``/``port``: where to listen (port 53 inside a test namespace, for the system
        resolver).
        """
        self._ttl = ttl
        self._zone: dict[str, dict[int, dns.rrset.RRset]] = {}
        for name, entries in records.items():
            by_type: dict[str, list[str]] = {}
            for rtype, value in entries:
                by_type.setdefault(rtype.upper(), []).append(value)
            self._zone[_key(name)] = {
                dns.rdatatype.from_text(rtype): dns.rrset.from_text(
                    _key(name), ttl, "IN", rtype, *values
                )
                for rtype, values in by_type.items()
            }
        self._servfail = {_key(n) for n in servfail}
        self._slow = {_key(n): float(s) for n, s in (slow or {}).items()}
        self._drop = {_key(n) for n in drop}
        self._host = host
        self._requested_port = port
        self._udp: socket.socket | None = None
        self._tcp: _TCPSide | None = None
        self._udp_tracker = ThreadTracker("dns-udp")
        self._wake: tuple[socket.socket, socket.socket] | None = None
        self._udp_thread: threading.Thread | None = None
        self._log_lock = threading.Lock()
        self._queries: list[DNSQuery] = []
        self._address: tuple[str, int] | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> tuple[str, int]:
        """Bind UDP and TCP on one port and start serving; returns ``(address, port)``."""
        if self._udp is not None:
            raise RuntimeError("server already started")
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        for _ in range(20):
            udp = socket.socket(family, socket.SOCK_DGRAM)
            try:
                udp.bind((self._host, self._requested_port))
                port = udp.getsockname()[1]
                tcp = _TCPSide(self, self._host, port)
                tcp.start_listening()
            except OSError as exc:
                udp.close()
                if exc.errno == errno.EADDRINUSE and self._requested_port == 0:
                    continue  # the TCP side of a random UDP port was taken; pick another
                raise
            break
        else:
            raise RuntimeError("no port free for both UDP and TCP")
        udp.setblocking(False)
        self._udp, self._tcp = udp, tcp
        self._wake = socket.socketpair()
        self._udp_thread = threading.Thread(
            target=self._udp_loop, name=f"{THREAD_PREFIX}dns-udp-loop"
        )
        self._udp_thread.start()
        self._address = (self._host, port)
        return self._address

    @property
    def address(self) -> tuple[str, int]:
        if self._address is None:
            raise RuntimeError("server not started")
        return self._address

    @property
    def port(self) -> int:
        return self.address[1]

    @property
    def queries(self) -> list[DNSQuery]:
        with self._log_lock:
            return list(self._queries)

    @property
    def errors(self) -> list[BaseException]:
        tcp_errors = self._tcp.errors if self._tcp is not None else []
        return [*self._udp_tracker.errors, *tcp_errors]

    def stop(self) -> None:
        """Stop both transports and join every thread. Idempotent."""
        if self._udp is None or self._tcp is None or self._wake is None:
            return
        self._udp_tracker.stopping.set()  # also cuts short any "slow" answer in progress
        self._wake[1].send(b"x")
        try:
            if self._udp_thread is not None:
                self._udp_thread.join(self.join_timeout)
            self._udp_tracker.shutdown(self.join_timeout)
        finally:
            self._tcp.stop()
            self._udp.close()
            for sock in self._wake:
                sock.close()
            self._udp = None
            self._wake = None

    def __enter__(self) -> DNSServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- serving ---------------------------------------------------------------------------

    def _udp_loop(self) -> None:
        assert self._udp is not None and self._wake is not None
        udp = self._udp
        with selectors.DefaultSelector() as selector:
            selector.register(udp, selectors.EVENT_READ)
            selector.register(self._wake[0], selectors.EVENT_READ)
            while not self._udp_tracker.stopping.is_set():
                for key, _ in selector.select():
                    if key.fileobj is self._wake[0]:
                        return
                    try:
                        wire, peer = udp.recvfrom(65535)
                    except OSError:
                        continue
                    # One thread per query, so a "slow" name does not hold up the others.
                    self._udp_tracker.spawn("query", self._serve_udp, udp, wire, peer)

    def _serve_udp(self, udp: socket.socket, wire: bytes, peer: tuple[str, int]) -> None:
        reply = self.answer(wire, "udp", None, self._udp_tracker)
        if reply is not None:
            udp.sendto(reply, peer)

    def answer(
        self, wire: bytes, transport: Transport, max_size: int | None, waiter: ThreadTracker
    ) -> bytes | None:
        """The wire reply to one query, or None to stay silent."""
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return _formerr(wire)
        if query.opcode() != dns.opcode.QUERY or len(query.question) != 1:
            response = dns.message.make_response(query)
            response.set_rcode(dns.rcode.NOTIMP if query.question else dns.rcode.FORMERR)
            return response.to_wire()
        question = query.question[0]
        key = _key(question.name)
        with self._log_lock:
            self._queries.append(DNSQuery(key, dns.rdatatype.to_text(question.rdtype), transport))
        if key in self._drop:
            return None
        delay = self._slow.get(key)
        if delay and not waiter.sleep(delay):
            return None  # stopping
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA | dns.flags.RA
        if key in self._servfail:
            response.set_rcode(dns.rcode.SERVFAIL)
        elif question.rdclass != dns.rdataclass.IN:
            response.set_rcode(dns.rcode.REFUSED)
        else:
            self._fill(response, key, question.rdtype)
        if max_size is None:
            max_size = query.payload if query.edns >= 0 else 512
        try:
            return response.to_wire(max_size=max_size)
        except dns.exception.TooBig:
            response.answer.clear()
            response.authority.clear()
            response.additional.clear()
            response.flags |= dns.flags.TC
            return response.to_wire(max_size=max_size)

    def _fill(self, response: dns.message.Message, key: str, rdtype: int) -> None:
        current = key
        for _ in range(MAX_CNAME_CHAIN):
            node = self._zone.get(current)
            if node is None:
                response.set_rcode(dns.rcode.NXDOMAIN)
                response.authority.append(self._soa(current))
                return
            if rdtype in node:
                response.answer.append(node[rdtype])
                return
            cname = node.get(dns.rdatatype.CNAME)
            if cname is None:
                response.authority.append(self._soa(current))  # NODATA
                return
            response.answer.append(cname)
            current = _key(next(iter(cname)).to_text())
        response.set_rcode(dns.rcode.SERVFAIL)  # chain too long (or a loop)

    def _soa(self, name: str) -> dns.rrset.RRset:
        labels = name.rstrip(".").split(".")
        apex = labels[-1] + "." if labels[-1] else "."
        mname = f"ns.{apex}" if apex != "." else "ns."
        rname = f"hostmaster.{apex}" if apex != "." else "hostmaster."
        return dns.rrset.from_text(
            apex, self._ttl, "IN", "SOA", f"{mname} {rname} 1 3600 600 86400 {self._ttl}"
        )


def _formerr(wire: bytes) -> bytes | None:
    if len(wire) < 12:
        return None
    response = dns.message.Message(id=int.from_bytes(wire[:2], "big"))
    response.flags |= dns.flags.QR
    response.set_rcode(dns.rcode.FORMERR)
    return response.to_wire()


def main(argv: Sequence[str] | None = None) -> int:
    """Run until SIGTERM/SIGINT; prints ``ADDRESS:PORT`` as its first stdout line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=53)
    parser.add_argument("--records", default="{}", help='JSON: {"name.": [["A", "127.0.0.1"]]}')
    parser.add_argument("--servfail", action="append", default=[])
    parser.add_argument("--drop", action="append", default=[])
    parser.add_argument("--slow", action="append", default=[], help="NAME=SECONDS")
    args = parser.parse_args(argv)
    records = {
        name: [(str(t), str(v)) for t, v in entries]
        for name, entries in json.loads(args.records).items()
    }
    slow = {n: float(s) for n, _, s in (item.partition("=") for item in args.slow)}
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with DNSServer(
        records,
        servfail=args.servfail,
        slow=slow,
        drop=args.drop,
        host=args.host,
        port=args.port,
    ) as server:
        host, port = server.address
        print(f"{host}:{port}", flush=True)
        while not stop.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
