"""The resolver's configuration files as glibc reads them: ``/etc/resolv.conf``,
``/etc/hosts`` and the ``hosts:`` line of ``/etc/nsswitch.conf``.

Pure parsers (text in, data out) and one bounded reader, like ``cgroups.py``: the ``dns`` probe
reads each file once through ``read_text`` (at most ``MAX_FILE_BYTES``) and parses the text
here. The rules follow glibc's ``resolv/res_init.c`` (nameserver, search/domain, ``options
ndots``; at most ``MAXNS`` = 3 servers are used) and ``nss/nsswitch.c`` (sources in order).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ollama_doctor.target import ip_or_none

MAX_FILE_BYTES = 256 * 1024  # /etc/hosts, resolv.conf, nsswitch.conf


def read_text(path: Path) -> str | None:
    """At most ``MAX_FILE_BYTES`` of ``path`` as text; ``None`` when it cannot be read."""
    try:
        with path.open("rb") as handle:
            return handle.read(MAX_FILE_BYTES).decode("utf-8", "replace")
    except OSError:
        return None


@dataclass(frozen=True)
class ResolvConf:
    nameservers: tuple[str, ...] = ()
    search: tuple[str, ...] = ()
    ndots: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {"nameservers": list(self.nameservers), "search": list(self.search),
                "ndots": self.ndots}


def parse_resolv_conf(text: str) -> ResolvConf:
    """``resolv.conf`` as glibc reads it: nameservers in order, the last search/domain line,
    ``options ndots:N``."""
    servers: list[str] = []
    search: tuple[str, ...] = ()
    ndots = 1
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        words = line.split()
        if len(words) < 2:
            continue
        key, rest = words[0], words[1:]
        if key == "nameserver":
            servers.append(rest[0])
        elif key in ("search", "domain"):
            search = tuple(d.rstrip(".") for d in rest if d != ".")
        elif key == "options":
            for opt in rest:
                name, _, value = opt.partition(":")
                if name == "ndots" and value.isdigit():
                    ndots = min(int(value), 15)
    return ResolvConf(tuple(servers), search, ndots)


def parse_nameserver(value: str) -> tuple[str, int]:
    """``ADDR[:PORT]`` (``1.2.3.4``, ``1.2.3.4:5353``, ``::1``, ``[::1]:5353``) → (address,
    port). Raises ``ValueError`` for anything else: a nameserver must be an IP address."""
    text = value.strip()
    port = 53
    if text.startswith("["):
        address, _, tail = text[1:].partition("]")
        if tail:
            if not tail.startswith(":") or not tail[1:].isdigit():
                raise ValueError(f"bad port in nameserver {value!r}")
            port = int(tail[1:])
    elif text.count(":") == 1:
        address, _, port_text = text.partition(":")
        if not port_text.isdigit():
            raise ValueError(f"bad port in nameserver {value!r}")
        port = int(port_text)
    else:
        address = text
    if ip_or_none(address) is None:
        raise ValueError(f"nameserver {value!r} is not an IP address")
    if not 0 < port < 65536:
        raise ValueError(f"port {port} of nameserver {value!r} is out of range")
    return address.split("%", 1)[0], port


def hosts_entries(text: str, name: str) -> list[tuple[int, str]]:
    """(line number, address) of every ``/etc/hosts`` line naming ``name``, in file order."""
    wanted = name.lower().rstrip(".")
    out: list[tuple[int, str]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        words = raw.split("#", 1)[0].split()
        if len(words) < 2 or ip_or_none(words[0]) is None:
            continue
        if wanted in (w.lower().rstrip(".") for w in words[1:]):
            out.append((number, words[0]))
    return out


def nsswitch_hosts(text: str) -> list[str] | None:
    """The sources on the ``hosts:`` line (``files``, ``dns``, …), actions dropped."""
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if line.startswith("hosts:"):
            return [w for w in line[len("hosts:"):].split() if not w.startswith("[")]
    return None


def files_decide(sources: Sequence[str] | None) -> bool:
    """Whether a name in ``/etc/hosts`` is answered from the file before any DNS query."""
    if sources is None:
        return True  # glibc's default is "files dns"
    if "files" not in sources:
        return False
    dns_like = [i for i, s in enumerate(sources) if s in ("dns", "resolve")]
    return not dns_like or sources.index("files") < dns_like[0]
