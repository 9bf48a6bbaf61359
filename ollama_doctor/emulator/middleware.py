"""What runs in front of Ollama's handlers: the router and the global middleware.

- gin's router: the route table, 404/405 bodies with ``Allow``, trailing-slash redirects, and Go
  ``ServeMux``'s redirect of unclean paths (``docs/ollama-wire.md`` §1.1);
- gin-contrib/cors v1.7.2 ``applyCors`` (403 with an empty body, preflight 204);
- ``allowedHostsMiddleware`` (``server/routes.go``, v0.33): the Host-header check when bound to
  loopback, which lets through loopback/private/unspecified IPs, this machine's own interface
  addresses (``isLocalIP``), ``localhost``, ``os.Hostname()`` and ``.localhost``/``.local``/
  ``.internal`` names;
- the faults that stand for something *in front of* Ollama: ``html`` (another web server),
  ``auth`` (an auth proxy) and ``rate-limit`` (a gateway).
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from collections.abc import Callable

from .faults import Bucket, Faults
from .wire import REASONS, Request, Responder, clean_path, http_date

NOT_FOUND_404 = b"404 page not found"
NOT_ALLOWED_405 = b"405 method not allowed"

# Route table: path -> methods in gin's tree order (HEAD, GET, POST, DELETE: the order in which
TREE_ORDER = ("HEAD", "GET", "POST", "DELETE")
ROUTES: dict[str, tuple[str, ...]] = {
    "/": ("HEAD", "GET"),
    "/api/version": ("HEAD", "GET"),
    "/api/status": ("GET",),
    "/api/pull": ("POST",),
    "/api/push": ("POST",),
    "/api/tags": ("HEAD", "GET"),
    "/api/show": ("POST",),
    "/api/delete": ("DELETE",),
    "/api/me": ("POST",),
    "/api/signout": ("POST",),
    "/api/create": ("POST",),
    "/api/copy": ("POST",),
    "/api/ps": ("GET",),
    "/api/generate": ("POST",),
    "/api/chat": ("POST",),
    "/api/embed": ("POST",),
    "/api/embeddings": ("POST",),
    "/v1/chat/completions": ("POST",),
    "/v1/completions": ("POST",),
    "/v1/embeddings": ("POST",),
    "/v1/responses": ("POST",),
    "/v1/messages": ("POST",),
    "/v1/audio/transcriptions": ("POST",),
    "/v1/models": ("GET",),
}
PARAM_ROUTES: dict[str, tuple[str, ...]] = {
    "/api/blobs/": ("HEAD", "POST"),
    "/v1/models/": ("GET",),
}


def route_for(path: str) -> tuple[str, tuple[str, ...], str] | None:
    """(route key, methods, path parameter) for ``path``, or None."""
    methods = ROUTES.get(path)
    if methods is not None:
        return path, methods, ""
    for prefix, methods in PARAM_ROUTES.items():
        if path.startswith(prefix):
            param = path[len(prefix) :]
            if param and "/" not in param:
                return prefix + ":param", methods, param
    return None


PREFLIGHT_HEADERS = ",".join(
    [
        "Authorization",
        "Content-Type",
        "User-Agent",
        "Accept",
        "X-Requested-With",
        "Openai-Beta",
        "X-Stainless-Arch",
        "X-Stainless-Async",
        "X-Stainless-Custom-Poll-Interval",
        "X-Stainless-Helper-Method",
        "X-Stainless-Lang",
        "X-Stainless-Os",
        "X-Stainless-Package-Version",
        "X-Stainless-Poll-Helper",
        "X-Stainless-Retry-Count",
        "X-Stainless-Runtime",
        "X-Stainless-Runtime-Version",
        "X-Stainless-Timeout",
    ]
)

NGINX_PAGE = b"""<!DOCTYPE html>
<html>
<head>
<title>Welcome to nginx!</title>
<style>
html { color-scheme: light dark; }
body { width: 35em; margin: 0 auto;
font-family: Tahoma, Verdana, Arial, sans-serif; }
</style>
</head>
<body>
<h1>Welcome to nginx!</h1>
<p>If you see this page, the nginx web server is successfully installed and
working. Further configuration is required.</p>

<p>For online documentation and support please refer to
<a href="http://nginx.org/">nginx.org</a>.<br/>
Commercial support is available at
<a href="http://nginx.com/">nginx.com</a>.</p>

<p><em>Thank you for using nginx.</em></p>
</body>
</html>
"""

GO_NETS_PRIVATE = tuple(
    ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
)


def host_without_port(host: str) -> str:
    """``net.SplitHostPort`` falling back to the whole value, as allowedHostsMiddleware does."""
    if host.startswith("["):
        end = host.find("]")
        if end > 0 and host[end + 1 : end + 2] == ":":
            return host[1:end]
        return host
    if host.count(":") == 1:
        return host.split(":", 1)[0]
    return host



def local_addresses() -> frozenset[str]:
    """This machine's interface addresses, as ``isLocalIP`` (routes.go) compares them.

    Ollama walks ``net.Interfaces()``; psutil reads the same list. Without psutil, the
    addresses the hostname resolves to are the best this process can do.
    """
    found: set[str] = set()
    try:
        import psutil

        for addrs in psutil.net_if_addrs().values():
            for addr in addrs:
                if addr.family in (socket.AF_INET, socket.AF_INET6):
                    found.add(addr.address.split("%")[0].lower())
    except Exception:  # psutil missing or /proc unreadable: fall back to the resolver
        with contextlib.suppress(OSError, UnicodeError):
            for info in socket.getaddrinfo(socket.gethostname(), None):
                found.add(str(info[4][0]).split("%")[0].lower())
    out: set[str] = set()
    for text in found:
        with contextlib.suppress(ValueError):
            out.add(str(ipaddress.ip_address(text)))
    return frozenset(out)


def origin_allowed(origin: str, f: Faults) -> bool:
    if f.allow_all_origins:
        return True
    for entry in f.origins:
        if entry == origin:
            return True
        star = entry.find("*")
        if star < 0:
            continue
        prefix, suffix = entry[:star], entry[star + 1 :]
        if star == 0 and origin.endswith(suffix):
            return True
        if star == len(entry) - 1 and origin.startswith(prefix):
            return True
        if origin.startswith(prefix) and origin.endswith(suffix):
            return True
    return False


def host_allowed(
    host: str, hostname: str, local: Callable[[], frozenset[str]] = local_addresses
) -> bool | None:
    """True/False for the Host check; None when an IP literal passes straight through."""
    name = host_without_port(host)
    try:
        addr = ipaddress.ip_address(name.split("%")[0] if "%" in name else name)
    except ValueError:
        addr = None
    if addr is not None:
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        if (
            addr.is_loopback
            or addr.is_unspecified
            or any(addr in net for net in GO_NETS_PRIVATE if net.version == addr.version)
            or str(addr) in local()
        ):
            return None
    low = name.lower()
    if low in ("", "localhost") or low == hostname:
        return True
    return low.endswith((".localhost", ".local", ".internal"))


async def front(req: Request, rsp: Responder, f: Faults, bucket: Bucket | None) -> bool:
    """The faults in front of Ollama; True when one of them answered."""
    if f.html:  # "not Ollama": some other web server on the port
        await send_nginx(rsp)
        return True
    if f.auth is not None:
        scheme, _sep, token = req.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or token.strip() != f.auth:
            await rsp.send(
                401,
                b"401 Unauthorized",
                "text/plain",
                [("WWW-Authenticate", 'Bearer realm="ollama"')],
            )
            return True
    if bucket is not None and not bucket.take():
        await rsp.send(
            429,
            b'{"error":"rate limit exceeded"}',
            "application/json",
            [("Retry-After", "1")],
        )
        return True
    return False


async def send_nginx(rsp: Responder) -> None:
    rsp.status = 200
    body = NGINX_PAGE
    head = (
        "HTTP/1.1 200 OK\r\nServer: nginx\r\n"
        f"Date: {http_date()}\r\nContent-Type: text/html\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Last-Modified: Tue, 11 Apr 2023 01:45:34 GMT\r\n"
        f"Connection: {'close' if rsp.close else 'keep-alive'}\r\n"
        'ETag: "6434bbbe-267"\r\nAccept-Ranges: bytes\r\n\r\n'
    ).encode()
    if rsp.f.hang_after_headers:
        await rsp.hang(head)
    rsp.conn.writer.write(head if rsp.req.method == "HEAD" else head + body)


async def redirect(rsp: Responder, code: int, location: str) -> None:
    """``http.Redirect``: an HTML body for GET, none for other methods."""
    rsp.log = False
    method = rsp.req.method
    if method in ("GET", "HEAD"):
        body = b""
        if method == "GET":
            body = f'<a href="{location}">{REASONS[code]}</a>.\n\n'.encode()
        await rsp.send(code, body, "text/html; charset=utf-8", [("Location", location)])
    else:
        await rsp.send(code, b"", None, [("Location", location)])


async def unclean_or_slash_redirect(req: Request, rsp: Responder) -> bool:
    """ServeMux's 301 for unclean paths, gin's RedirectTrailingSlash; True when redirected."""
    path = req.path
    query = f"?{req.query}" if req.query else ""
    # Go's ServeMux cleans the path before gin sees it (e.g. "//api/chat").
    cleaned = clean_path(path) if ("//" in path or "/." in path) else path
    if cleaned != path and req.method != "CONNECT":
        await redirect(rsp, 301, cleaned + query)
        return True
    if route_for(path) is None and len(path) > 1 and path.endswith("/"):
        # gin's RedirectTrailingSlash: only when this method has the slash-less route.
        target = route_for(path[:-1])
        if target is not None and req.method in target[1]:
            await redirect(rsp, 301 if req.method == "GET" else 307, path[:-1] + query)
            return True
    return False


async def cors(req: Request, rsp: Responder, f: Faults) -> bool:
    """gin-contrib/cors v1.7.2 ``applyCors``; True when it answered (403 or preflight 204)."""
    host = req.headers.get("host", "")
    origin = req.headers.get("origin", "")
    if not origin or origin == "http://" + host or origin == "https://" + host:
        return False
    if not origin_allowed(origin, f):
        await rsp.send(403)
        return True
    if req.method == "OPTIONS":
        headers = [
            ("Access-Control-Allow-Methods", "GET,POST,PUT,PATCH,DELETE,HEAD,OPTIONS"),
            ("Access-Control-Allow-Headers", PREFLIGHT_HEADERS),
            ("Access-Control-Max-Age", "43200"),
        ]
        if f.allow_all_origins:
            headers.append(("Access-Control-Allow-Origin", "*"))
        else:
            headers += [
                ("Vary", "Origin"),
                ("Vary", "Access-Control-Request-Method"),
                ("Vary", "Access-Control-Request-Headers"),
                ("Access-Control-Allow-Origin", origin),
            ]
        await rsp.send(204, headers=headers)
        return True
    if f.allow_all_origins:
        rsp.extra = [("Access-Control-Allow-Origin", "*")]
    else:
        rsp.extra = [("Vary", "Origin"), ("Access-Control-Allow-Origin", origin)]
    return False


async def host_check(req: Request, rsp: Responder, hostname: str) -> bool:
    """``allowedHostsMiddleware`` once it applies; True when it answered (403 or 204)."""
    verdict = host_allowed(req.headers.get("host", ""), hostname)
    if verdict is False:
        await rsp.send(403)
        return True
    if verdict is True and req.method == "OPTIONS":
        await rsp.send(204)
        return True
    return False


async def route_errors(
    req: Request, rsp: Responder, route: tuple[str, tuple[str, ...], str] | None
) -> bool:
    """gin's 404 and 405 (with ``Allow``); True when it answered."""
    if route is None:
        await rsp.send(404, NOT_FOUND_404, "text/plain")
        return True
    methods = route[1]
    if req.method not in methods:
        allowed = [m for m in TREE_ORDER if m in methods and m != req.method]
        await rsp.send(405, NOT_ALLOWED_405, "text/plain", [("Allow", ", ".join(allowed))])
        return True
    return False
