"""A threaded TCP server base that always stops cleanly.

Each accepted connection runs ``handle`` in its own thread. ``stop()`` wakes the accept loop, shuts
down every socket still registered (client connections *and* the upstream sockets handlers opened
through ``connect_upstream``), so blocked reads return at once, then joins every thread it started.
A thread still alive after the join timeout makes ``stop()`` raise instead of leaking silently.

All threads are named ``odt-<server>-…`` so a test can check that none outlives its server.
"""

from __future__ import annotations

import contextlib
import itertools
import selectors
import socket
import sys
import threading
import traceback
from collections.abc import Callable
from types import TracebackType

from tests.support._http import connect_loopback

THREAD_PREFIX = "odt-"


class ThreadTracker:
    """The threads and sockets of one server, so that ``shutdown`` can interrupt and join them."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.stopping = threading.Event()
        self.errors: list[BaseException] = []
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._threads: set[threading.Thread] = set()
        self._ids = itertools.count(1)

    def spawn(self, role: str, target: Callable[..., object], *args: object) -> bool:
        """Start ``target(*args)`` in a tracked thread; False (nothing started) once stopping."""
        with self._lock:
            if self.stopping.is_set():
                return False
            thread = threading.Thread(
                target=self._run,
                args=(target, *args),
                name=f"{THREAD_PREFIX}{self.name}-{role}-{next(self._ids)}",
            )
            self._threads.add(thread)
        thread.start()
        return True

    def _run(self, target: Callable[..., object], *args: object) -> None:
        try:
            target(*args)
        except OSError:
            pass  # resets, timeouts and shutdown() during stop are part of the job
        except Exception as exc:  # a bug in a test server: keep it for the test to see
            self.errors.append(exc)
            traceback.print_exc(file=sys.stderr)
        finally:
            with self._lock:
                self._threads.discard(threading.current_thread())

    def track(self, sock: socket.socket) -> bool:
        """Register a socket for shutdown on stop; False (caller must close it) once stopping."""
        with self._lock:
            if self.stopping.is_set():
                return False
            self._sockets.add(sock)
            return True

    def release(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)
        sock.close()

    def sleep(self, seconds: float) -> bool:
        """Sleep unless stopping; True when the full time elapsed."""
        return not self.stopping.wait(seconds)

    def shutdown(self, timeout: float) -> None:
        with self._lock:
            self.stopping.set()
            sockets = list(self._sockets)
            threads = list(self._threads)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join(timeout)
        alive = [t.name for t in threads if t.is_alive()]
        if alive:
            raise RuntimeError(f"{self.name}: threads still running after stop: {alive}")


class ThreadedTCPServer:
    """Base class: override ``handle(conn, peer)``; call ``start_listening`` from ``start``."""

    join_timeout = 5.0

    def __init__(self, name: str, host: str = "127.0.0.1", port: int = 0) -> None:
        self.tracker = ThreadTracker(name)
        self._host = host
        self._requested_port = port
        self._listener: socket.socket | None = None
        self._wake: tuple[socket.socket, socket.socket] | None = None
        self._accept_thread: threading.Thread | None = None
        self._port = 0

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("server not started")
        return self._port

    @property
    def errors(self) -> list[BaseException]:
        """Unexpected exceptions raised by handlers (bugs in the server, not network errors)."""
        return list(self.tracker.errors)

    def start_listening(self) -> int:
        if self._listener is not None or self.tracker.stopping.is_set():
            raise RuntimeError("server already started (servers are single-use)")
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.bind_options(listener)
            listener.bind((self._host, self._requested_port))
            listener.listen(128)
            listener.setblocking(False)
        except BaseException:
            listener.close()
            raise
        self._listener = listener
        self._wake = socket.socketpair()
        self._port = listener.getsockname()[1]
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name=f"{THREAD_PREFIX}{self.tracker.name}-accept"
        )
        self._accept_thread.start()
        return self._port

    def bind_options(self, listener: socket.socket) -> None:
        """Socket options to set before ``bind`` (subclasses: e.g. ``IPV6_V6ONLY``)."""

    def _accept_loop(self) -> None:
        assert self._listener is not None and self._wake is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self._listener, selectors.EVENT_READ)
            selector.register(self._wake[0], selectors.EVENT_READ)
            while not self.tracker.stopping.is_set():
                for key, _ in selector.select():
                    if key.fileobj is self._wake[0]:
                        return
                    try:
                        conn, peer = self._listener.accept()
                    except OSError:
                        continue
                    conn.setblocking(True)
                    if not self.tracker.track(conn):
                        conn.close()
                        return
                    if not self.tracker.spawn("conn", self._serve, conn, peer):
                        self.tracker.release(conn)

    def _serve(self, conn: socket.socket, peer: tuple[str, int]) -> None:
        try:
            self.handle(conn, peer)
        finally:
            self.tracker.release(conn)

    def handle(self, conn: socket.socket, peer: tuple[str, int]) -> None:
        raise NotImplementedError

    def abort_if_stopping(self) -> None:
        """Raise ``ConnectionAbortedError`` once stopping, so that a handler whose upstream was
        cut by ``stop()`` hangs up instead of answering with an error page of its own."""
        if self.tracker.stopping.is_set():
            raise ConnectionAbortedError("server is stopping")

    def connect_upstream(self, address: str, port: int, timeout: float) -> socket.socket:
        """A tracked connection to a loopback upstream; the caller must ``release`` it."""

        opened: list[socket.socket] = []

        def register(sock: socket.socket) -> None:
            opened.append(sock)
            if not self.tracker.track(sock):
                raise ConnectionAbortedError("server is stopping")

        try:
            return connect_loopback(address, port, timeout, register)
        except BaseException:
            for sock in opened:
                self.tracker.release(sock)
            raise

    def stop(self) -> None:
        """Stop accepting, interrupt every connection, join every thread. Idempotent."""
        if self._listener is None or self._accept_thread is None or self._wake is None:
            return
        self.tracker.stopping.set()
        self._wake[1].send(b"x")
        self._accept_thread.join(self.join_timeout)
        try:
            self.tracker.shutdown(self.join_timeout)
        finally:
            self._listener.close()
            for sock in self._wake:
                sock.close()
            self._listener = None
            self._wake = None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
