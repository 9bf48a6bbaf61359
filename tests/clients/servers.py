"""Servers a situation runs inside its namespace, at a fixed address and port.

``python -m tests.clients.servers KIND …`` (cwd = the repository) prints one line once it
listens, then serves until terminated:

- ``forward MODE HOST PORT [NAME=PORT …]``: ``tests.support.proxy.ForwardProxy`` (``NAME=PORT``:
  the proxy resolves NAME to 127.0.0.1:PORT, as a corporate gateway resolves internal names);
  ``NAME=PORT@emulator`` starts an emulator with the Host check off on a free port first.
- ``reverse HOST PORT UPSTREAM [READ_TIMEOUT]``: ``tests.support.reverse_proxy.ReverseProxy``
  (nginx-like, passes the client's Host through).
- ``json HOST PORT``: another JSON web service (not Ollama) that answers 200 with its own JSON
  to every request, as an app's health or inventory API would.
"""

from __future__ import annotations

import http.server
import json
import sys
import threading
from typing import Any


class _JSONService(http.server.BaseHTTPRequestHandler):
    server_version = "uvicorn"
    sys_version = ""

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(min(length, 1 << 20))
        body = json.dumps({"status": "ok", "service": "inventory-api", "version": "2.4.1"})
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_HEAD = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _listen(server: Any, host: str, port: int) -> None:
    # The test servers take no address arguments (they listen on a free loopback port); a
    # situation needs a fixed one so that its fixtures are byte-for-byte reproducible.
    server._host = host
    server._requested_port = port
    server.start_listening()


def main(argv: list[str]) -> None:
    kind, *rest = argv
    if kind == "forward":
        from tests.support.proxy import ForwardProxy

        mode, host, port, *names = rest
        resolve: dict[str, tuple[str, int]] = {}
        for item in names:
            name, _, value = item.partition("=")
            if value.endswith("@emulator"):
                from ollama_doctor.emulator import Emulator

                emu = Emulator(host_check="off")
                emu.start()
                resolve[name] = ("127.0.0.1", emu.port)
            else:
                resolve[name] = ("127.0.0.1", int(value))
        _listen(ForwardProxy(mode, resolve=resolve), host, int(port))  # type: ignore[arg-type]
    elif kind == "reverse":
        from tests.support.reverse_proxy import ReverseProxy

        host, port, upstream, *timeout = rest
        rp = ReverseProxy(upstream, read_timeout=float(timeout[0]) if timeout else None)
        _listen(rp, host, int(port))
    elif kind == "json":
        host, port = rest
        httpd = http.server.ThreadingHTTPServer((host, int(port)), _JSONService)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
    else:
        raise SystemExit(f"unknown server kind {kind!r}")
    print(f"listening {kind}", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main(sys.argv[1:])
