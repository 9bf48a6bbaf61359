"""Which server the user's client calls: ``OLLAMA_HOST``-compatible parsing of the target.

The rules are ollama-python's ``_parse_host`` (docs/ollama-wire.md §6.1), the client most users run:

- empty → ``http://127.0.0.1:11434``; no scheme → ``http`` and port 11434;
- ``http://host`` without a port → **80**, ``https://host`` → **443** (it surprises users);
- ``:port`` alone → loopback; IPv6 with or without brackets;
- a path is kept (trailing slashes stripped): it is the base the user's client calls under.

Where the Go client (the ``ollama`` CLI, ``envconfig.Host``) reads the same value differently,
``go_client_note`` says so. ``0.0.0.0``/``::`` are bind addresses: ``Target.url`` keeps what the
user gave, while ``Target.dial_host`` is the loopback address the probes actually dial.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Literal

DEFAULT_PORT = 11434
DEFAULT_URL = "http://127.0.0.1:11434"

# Where the target came from: --host, a pasted error, the client family's own variable
# (``ClientFamily.host_env``: litellm reads OLLAMA_API_BASE, @langchain/ollama OLLAMA_BASE_URL)
Source = Literal["option", "OLLAMA_HOST", "OPENAI_BASE_URL", "OLLAMA_API_BASE", "OLLAMA_BASE_URL",
                 "default", "error-text"]
HOST_VARIABLES: tuple[Source, ...] = ("OLLAMA_HOST", "OPENAI_BASE_URL", "OLLAMA_API_BASE",
                                      "OLLAMA_BASE_URL")

_HOSTNAME = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_.-]{0,251}[A-Za-z0-9_])?\.?$")


class TargetError(ValueError):
    """A target that cannot be parsed; the message names the bad value."""


@dataclass(frozen=True)
class Target:
    raw: str
    source: Source
    scheme: str
    host: str  # without brackets
    port: int
    path: str  # "" or "/v1", "/ollama", … without a trailing slash
    port_explicit: bool
    scheme_explicit: bool

    @property
    def is_ipv6(self) -> bool:
        return ":" in self.host

    @property
    def bracketed_host(self) -> str:
        return f"[{self.host}]" if self.is_ipv6 else self.host

    @property
    def url(self) -> str:
        """The base URL the user's client builds (ollama-python's form)."""
        return f"{self.scheme}://{self.bracketed_host}:{self.port}{self.path}"

    @property
    def is_unspecified(self) -> bool:
        return self.host in ("0.0.0.0", "::")

    @property
    def dial_host(self) -> str:
        """The host the probes connect to: bind addresses become loopback."""
        if self.host == "0.0.0.0":
            return "127.0.0.1"
        if self.host == "::":
            return "::1"
        return self.host

    @property
    def root_url(self) -> str:
        """``scheme://host:port`` as dialled: where Ollama's own routes live."""
        host = f"[{self.dial_host}]" if ":" in self.dial_host else self.dial_host
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The root plus the user's path: where the user's client sends its calls."""
        return self.root_url + self.path

    @property
    def is_ip_literal(self) -> bool:
        return ip_or_none(self.host) is not None

    @property
    def is_loopback(self) -> bool:
        if self.host.lower() == "localhost" or self.host.lower().endswith(".localhost"):
            return True
        ip = ip_or_none(self.dial_host)
        return ip is not None and ip.is_loopback

    def to_dict(self) -> dict[str, object]:
        return {"url": self.url, "source": self.source, "dialed": self.base_url}


def ip_or_none(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def parse_target(value: str | None, source: Source = "option") -> Target:
    """Parse an ``OLLAMA_HOST``-style value the way ollama-python does.

    Raises ``TargetError`` with a one-line message for values no client could use.
    """
    raw = (value or "").strip()
    if not raw:
        return Target(DEFAULT_URL if value is None else raw, "default" if value is None else source,
                      "http", "127.0.0.1", DEFAULT_PORT, "", False, False)
    if any(ch.isspace() for ch in raw):
        raise TargetError(f"invalid target {raw!r}: it contains white space")

    scheme, sep, rest = raw.partition("://")
    if sep:
        scheme = scheme.lower()
        if scheme not in ("http", "https"):
            raise TargetError(f"invalid target {raw!r}: unknown scheme {scheme!r} "
                              "(use http:// or https://)")
        default_port = 80 if scheme == "http" else 443
        scheme_explicit = True
    else:
        scheme, rest, default_port, scheme_explicit = "http", raw, DEFAULT_PORT, False
    if "@" in rest.split("/", 1)[0]:
        raise TargetError(f"invalid target {raw!r}: credentials in the URL are not supported; "
                          "use --header 'Authorization: …'")

    hostport, slash, path = rest.partition("/")
    path = ("/" + path).rstrip("/") if slash else ""
    host, port_text = _split_hostport(hostport, raw)
    if not host:
        if sep and not port_text:
            raise TargetError(f"invalid target {raw!r}: the host is empty")
        host = "127.0.0.1"  # ollama-python: ":11434" → loopback
    if port_text:
        if not port_text.isdigit():
            raise TargetError(f"invalid target {raw!r}: port {port_text!r} is not a number")
        port = int(port_text)
        if not 0 < port < 65536:
            raise TargetError(f"invalid target {raw!r}: port {port} is out of range (1-65535)")
    else:
        port = default_port
    if ip_or_none(host) is None and not _HOSTNAME.match(host):
        raise TargetError(f"invalid target {raw!r}: {host!r} is not a valid host name")
    return Target(raw, source, scheme, host.lower() if ip_or_none(host) is None else host,
                  port, path, bool(port_text), scheme_explicit)


def _split_hostport(hostport: str, raw: str) -> tuple[str, str]:
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise TargetError(f"invalid target {raw!r}: unclosed '[' in the IPv6 address")
        host, tail = hostport[1:end], hostport[end + 1:]
        if tail and not tail.startswith(":"):
            raise TargetError(f"invalid target {raw!r}: unexpected {tail!r} after the address")
        if ip_or_none(host) is None:
            raise TargetError(f"invalid target {raw!r}: {host!r} is not an IPv6 address")
        return host, tail[1:]
    if hostport.count(":") >= 2:  # a bare IPv6 address; ollama-python adds the brackets
        if ip_or_none(hostport) is None:
            raise TargetError(f"invalid target {raw!r}: {hostport!r} is not an IPv6 address")
        return hostport, ""
    host, _, port = hostport.partition(":")
    if hostport.endswith(":") and not port:
        raise TargetError(f"invalid target {raw!r}: the port after ':' is empty")
    return host, port


def go_client_note(target: Target) -> str | None:
    """How the ``ollama`` CLI (Go's ``envconfig.Host``) reads the same value, when it differs."""
    raw = target.raw
    if raw.startswith(":"):
        return (f"The ollama CLI reads {raw!r} as http://{raw} (every interface of this machine); "
                "ollama-python dials 127.0.0.1.")
    if target.host == "ollama.com" and not target.scheme_explicit:
        return ("The ollama CLI maps a bare 'ollama.com' to https://ollama.com:443; "
                f"ollama-python dials {target.url}.")
    return None


def base_path_kind(path: str) -> Literal["root", "openai", "api", "other"]:
    """Classify the path of a base URL: what kind of client it suits.

    ``root`` suits Ollama's own clients, ``openai`` suits OpenAI SDKs, ``api`` doubles to
    ``/api/api/…`` in Ollama's clients, ``other`` is a reverse-proxy prefix (or a mistake).
    """
    p = path.rstrip("/").lower()
    if not p:
        return "root"
    if p.endswith("/v1"):
        return "openai"
    if p.endswith("/api") or ("/api/" in p + "/" and p.split("/api", 1)[0] == ""):
        return "api"
    return "other"
