"""Which proxy each client family would use for a URL: pure functions over an environment mapping.

Every client reads the same few variables (``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY``,
``NO_PROXY``, in either case) and every one reads them differently. That is why "curl works but
my Python app fails" (failure-modes.md mode 5). Each family below follows its own source; the
comments cite it, so a rule can be checked against the code it copies.

=========  ===============================  ==============================  ====================
family     proxy variable read              NO_PROXY read                   loopback
=========  ===============================  ==============================  ====================
httpx      ``urllib.request.getproxies()``  the same ``no`` key             no bypass
           (lower case wins; OS settings
           when no variable is set)
requests   same                             ``no_proxy`` or ``NO_PROXY``    no bypass
curl       ``http_proxy`` (never upper      ``no_proxy`` or ``NO_PROXY``    no bypass
           case), else ``x_proxy`` then
           ``X_PROXY``, then ``all_proxy``
           then ``ALL_PROXY``
go         ``HTTP_PROXY`` then              ``NO_PROXY`` then ``no_proxy``  never proxied
           ``http_proxy`` (upper case
           wins; no ``ALL_PROXY``)
node       none, unless                     ``no_proxy`` then ``NO_PROXY``  no bypass
           ``NODE_USE_ENV_PROXY=1``
=========  ===============================  ==============================  ====================

Nothing here reads ``os.environ`` or the OS: the OS-level settings Python falls back to on
macOS and Windows come in as the ``system`` mapping (the probe asks the OS; on Linux there are
none, since ``getproxies()`` there is only the environment).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from ollama_doctor.redact import redact_url

Family = Literal["httpx", "requests", "curl", "go", "node"]
FAMILIES: tuple[Family, ...] = ("httpx", "requests", "curl", "go", "node")

USED_BY: dict[Family, str] = {
    "httpx": "ollama-python, langchain-ollama, openai-python, LiteLLM (httpx)",
    "requests": "requests, urllib3 and the tools built on them",
    "curl": "curl and libcurl",
    "go": "the ollama CLI and other Go programs",
    "node": "ollama-js and other Node programs (fetch, http)",
}

DEFAULT_PORTS = {"http": 80, "https": 443}
LOCAL_ENTRIES = ("localhost", "127.0.0.1", "::1")

# httpx 0.28 accepts these proxy schemes (httpx/_config.py ``Proxy``); older httpx also
# rejected socks5h.
HTTPX_SCHEMES = ("http", "https", "socks5", "socks5h")
SOCKS_SCHEMES = ("socks5", "socks5h")


@dataclass(frozen=True)
class Decision:
    """What one client family does with one URL: the proxy it uses (``None`` = direct), and why.

    ``source`` names where the proxy came from (a variable, or ``system``); ``matched`` is the
    ``NO_PROXY`` entry that made the call direct, when one did.
    """

    proxy_url: str | None
    reason: str
    source: str | None = None
    matched: str | None = None

    @property
    def route(self) -> str:
        return "direct" if self.proxy_url is None else "proxy"

    def to_dict(self, family: Family) -> dict[str, str | None]:
        return {"route": self.route,
                "proxy": None if self.proxy_url is None else redact_proxy(self.proxy_url),
                "source": self.source, "reason": self.reason, "used_by": USED_BY[family]}


@dataclass(frozen=True)
class ClientError:
    """Why building an httpx client fails before any request (it breaks ``import ollama``)."""

    kind: Literal["socks-missing", "unknown-scheme"]
    variable: str
    proxy_url: str
    message: str  # what httpx raises, credentials masked


# --------------------------------------------------------------------------------------------
# Reading the settings


def proxy_variables(env: Mapping[str, str]) -> dict[str, str]:
    """Every ``*_proxy`` variable that is set (either case), plus the two switches that change
    how clients read them: ``NODE_USE_ENV_PROXY`` and ``REQUEST_METHOD`` (CGI)."""
    out = {name: value for name, value in env.items()
           if name.lower().endswith("_proxy") and value}
    for name in ("NODE_USE_ENV_PROXY", "REQUEST_METHOD"):
        if env.get(name):
            out[name] = env[name]
    return out


def python_env_proxies(env: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """``urllib.request.getproxies_environment()`` over ``env``: scheme → (value, variable).

    CPython's two passes: any ``<scheme>_proxy`` in any case first, then names whose
    ``_proxy`` suffix is lower case override them, and an *empty* lower-case one removes the
    entry. Under CGI (``REQUEST_METHOD`` set) an upper-case ``HTTP_PROXY`` is dropped
    (CVE-2016-1000110).
    """
    proxies: dict[str, tuple[str, str]] = {}
    for name, value in env.items():
        low = name.lower()
        if value and low[-6:] == "_proxy":
            proxies[low[:-6]] = (value, name)
    if "REQUEST_METHOD" in env:
        proxies.pop("http", None)
    for name, value in env.items():
        if name[-6:] == "_proxy":
            low = name.lower()
            if value:
                proxies[low[:-6]] = (value, name)
            else:
                proxies.pop(low[:-6], None)
    return proxies


def python_proxies(env: Mapping[str, str],
                   system: Mapping[str, str] | None = None) -> dict[str, tuple[str, str]]:
    """``urllib.request.getproxies()``: the environment, or — only when it holds no proxy
    variable at all — the OS settings (macOS System Settings, the Windows registry)."""
    found = python_env_proxies(env)
    if found or not system:
        return found
    return {scheme: (value, "system") for scheme, value in system.items() if value}


def _first(env: Mapping[str, str], *names: str) -> tuple[str, str] | None:
    """The first of ``names`` that is set and not empty, with its name."""
    for name in names:
        value = env.get(name)
        if value:
            return value, name
    return None


# --------------------------------------------------------------------------------------------
# The URL


@dataclass(frozen=True)
class _Url:
    scheme: str
    host: str  # lower case, IPv6 without brackets
    port: int | None  # as written; None when absent

    @property
    def effective_port(self) -> int:
        return self.port if self.port is not None else DEFAULT_PORTS.get(self.scheme, 80)


def _parse(url: str) -> _Url:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    return _Url(parts.scheme.lower(), (parts.hostname or "").lower(), port)


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None


def with_scheme(proxy: str) -> str:
    """A proxy value as clients use it: ``host:3128`` means ``http://host:3128``."""
    return proxy if "://" in proxy else f"http://{proxy}"


def redact_proxy(proxy: str) -> str:
    """A proxy value with its password masked (also when the value has no scheme)."""
    if "://" in proxy:
        return redact_url(proxy)
    return redact_url(f"http://{proxy}").removeprefix("http://")


def proxy_scheme(proxy: str) -> str:
    return with_scheme(proxy).split("://", 1)[0].lower()


# --------------------------------------------------------------------------------------------
# The decision, per family


def proxy_for(url: str, env: Mapping[str, str], family: Family, *,
              system: Mapping[str, str] | None = None,
              system_bypass: Callable[[str], bool] | None = None) -> Decision:
    """The proxy ``family`` uses for ``url`` under ``env`` (and the OS settings ``system``)."""
    target = _parse(url)
    if family == "httpx":
        return _httpx(target, env, system)
    if family == "requests":
        return _requests(target, env, system, system_bypass)
    if family == "curl":
        return _curl(target, env)
    if family == "go":
        return _go(target, env)
    if family == "node":
        return _node(target, env)
    raise ValueError(f"unknown client family {family!r}")


def decide_all(url: str, env: Mapping[str, str], *, system: Mapping[str, str] | None = None,
               system_bypass: Callable[[str], bool] | None = None) -> dict[Family, Decision]:
    return {family: proxy_for(url, env, family, system=system, system_bypass=system_bypass)
            for family in FAMILIES}


# -- httpx (httpx/_utils.py get_environment_proxies, URLPattern; httpx/_client.py mounts) ------


@dataclass(frozen=True)
class _Pattern:
    """httpx's ``URLPattern``: ``all://*example.com:8080`` and friends."""

    key: str
    scheme: str  # "" = any
    host: str  # "" = any
    port: int | None

    @classmethod
    def parse(cls, key: str) -> _Pattern | None:
        scheme, _, rest = key.partition("://")
        scheme = scheme.lower()
        netloc = rest.split("/", 1)[0]
        try:
            parts = urlsplit(f"x://{netloc}")
            port = parts.port
        except ValueError:
            return None  # httpx would raise InvalidURL here; the entry never matches
        host = (parts.hostname or "").lower()
        return cls(key, "" if scheme == "all" else scheme, "" if host == "*" else host, port)

    @property
    def priority(self) -> tuple[int, int, int]:
        # URLPattern.priority: a port first, then longer hosts, then longer schemes.
        return (0 if self.port is not None else 1, -len(self.host), -len(self.scheme))

    def matches(self, url: _Url) -> bool:
        if self.scheme and self.scheme != url.scheme:
            return False
        if self.host:
            if self.host.startswith("*."):
                # "*.example.com" matches www.example.com, not example.com
                pattern = f"^.+\\.{re.escape(self.host[2:])}$"
            elif self.host.startswith("*"):
                # "*example.com" matches example.com and www.example.com, not wwwexample.com
                pattern = f"^(.+\\.)?{re.escape(self.host[1:])}$"
            else:
                pattern = f"^{re.escape(self.host)}$"
            if not re.match(pattern, url.host):
                return False
        # httpx.URL.port is None for the scheme's default port, so "host:80" never matches
        # http://host:80.
        url_port = None if url.port == DEFAULT_PORTS.get(url.scheme) else url.port
        return self.port is None or self.port == url_port


def _httpx_mounts(env: Mapping[str, str], system: Mapping[str, str] | None
                  ) -> tuple[dict[str, tuple[str | None, str]], bool]:
    """``get_environment_proxies()``: pattern key → (proxy or None, where it came from), and
    whether ``NO_PROXY`` holds ``*`` (then httpx drops every proxy)."""
    proxies = python_proxies(env, system)
    mounts: dict[str, tuple[str | None, str]] = {}
    for scheme in ("http", "https", "all"):
        if scheme in proxies:
            value, source = proxies[scheme]
            mounts[f"{scheme}://"] = (with_scheme(value), source)
    no_value, no_source = proxies.get("no", ("", ""))
    for entry in (h.strip() for h in no_value.split(",")):
        if entry == "*":
            return {}, True
        if not entry:
            continue
        # Each entry becomes a mount to "no proxy"; IPv4 text (even "10.0.0.0/8": httpx keeps
        # only the address, so CIDR ranges match just that one address), bracketed IPv6,
        # "localhost" exactly, anything else as "*entry" (the name and its subdomains).
        if "://" in entry:
            key = entry
        elif _is_ipv4(entry):
            key = f"all://{entry}"
        elif _is_ipv6(entry):
            key = f"all://[{entry}]"
        elif entry.lower() == "localhost":
            key = f"all://{entry}"
        else:
            key = f"all://*{entry}"
        mounts[key] = (None, f"{no_source}={entry}")
    return mounts, False


def _is_ipv4(entry: str) -> bool:
    try:
        ipaddress.IPv4Address(entry.split("/")[0])
    except ValueError:
        return False
    return True


def _is_ipv6(entry: str) -> bool:
    try:
        ipaddress.IPv6Address(entry.split("/")[0])
    except ValueError:
        return False
    return True


def _httpx(url: _Url, env: Mapping[str, str], system: Mapping[str, str] | None) -> Decision:
    mounts, star = _httpx_mounts(env, system)
    if star:
        return Decision(None, "NO_PROXY contains '*': httpx ignores every proxy variable",
                        matched="*")
    patterns = [(p, mounts[key]) for key in mounts if (p := _Pattern.parse(key)) is not None]
    patterns.sort(key=lambda item: item[0].priority)  # stable, as httpx's sorted(mounts)
    for pattern, (proxy, source) in patterns:
        if not pattern.matches(url):
            continue
        if proxy is None:
            entry = source.split("=", 1)[-1]
            return Decision(None, f"NO_PROXY entry {entry!r} covers {url.host}",
                            matched=entry)
        why = f"{source} applies to {url.scheme}:// URLs"
        if pattern.scheme == "":
            why = f"{source} applies to every URL"
        no_entries = [k for k, (p, _) in mounts.items() if p is None]
        if no_entries:
            why += f"; no NO_PROXY entry matches {url.host}"
            if _ip(url.host) is not None and any("localhost" in k for k in no_entries):
                why += " (httpx does not treat 'localhost' as covering IP addresses)"
        else:
            why += "; NO_PROXY is not set, and httpx has no loopback bypass"
        return Decision(proxy, why, source=source)
    return Decision(None, f"no proxy variable applies to {url.scheme}:// URLs")


def httpx_client_error(env: Mapping[str, str], system: Mapping[str, str] | None,
                       socks_available: bool) -> ClientError | None:
    """What ``httpx.Client()`` (and so ``import ollama``) raises under ``env``, if anything.

    httpx builds a transport for *every* proxy mount when the client is created, whatever URL
    is called later, so a bad ``ALL_PROXY`` breaks clients of local servers too; only
    ``NO_PROXY=*`` (no mounts at all) avoids it (httpx/_client.py ``_init_proxy_transport``,
    httpx/_config.py ``Proxy``).
    """
    mounts, _ = _httpx_mounts(env, system)
    for key in ("http://", "https://", "all://"):
        if key not in mounts:
            continue
        proxy, source = mounts[key]
        if proxy is None:
            continue
        scheme = proxy_scheme(proxy)
        shown = redact_proxy(proxy)
        if scheme not in HTTPX_SCHEMES:
            return ClientError("unknown-scheme", source, shown,
                               f"ValueError: Unknown scheme for proxy URL URL('{shown}')")
        if scheme in SOCKS_SCHEMES and not socks_available:
            return ClientError("socks-missing", source, shown,
                               "ImportError: Using SOCKS proxy, but the 'socksio' package is not "
                               "installed. Make sure to install httpx using "
                               "`pip install httpx[socks]`.")
    return None


# -- requests (requests/utils.py should_bypass_proxies, get_environ_proxies, select_proxy) ----


def _requests(url: _Url, env: Mapping[str, str], system: Mapping[str, str] | None,
              system_bypass: Callable[[str], bool] | None) -> Decision:
    host = url.host
    # get_proxy("no_proxy"): os.environ.get(key) or os.environ.get(key.upper())
    found = _first(env, "no_proxy", "NO_PROXY")
    if found:
        no_value, no_name = found
        entries = [h for h in no_value.replace(" ", "").split(",") if h]
        if _is_plain_ipv4(host):
            for entry in entries:
                if _requests_cidr(entry):
                    if ipaddress.IPv4Address(host) in ipaddress.IPv4Network(entry, strict=False):
                        return Decision(None, f"{no_name} range {entry!r} covers {host}",
                                        matched=entry)
                elif host == entry:
                    return Decision(None, f"{no_name} entry {entry!r} is {host}", matched=entry)
        else:
            with_port = f"{host}:{url.port}" if url.port else host
            for entry in entries:
                # a bare suffix test: "host" also covers "myhost"
                if host.endswith(entry) or with_port.endswith(entry):
                    return Decision(None, f"{no_name} entry {entry!r} ends {host}",
                                    matched=entry)
    env_proxies = python_env_proxies(env)
    if env_proxies:
        bypass = _urllib_bypass(host, env_proxies)
        if bypass is not None:
            return Decision(None, f"urllib's NO_PROXY rule: entry {bypass!r} covers {host}",
                            matched=bypass)
    elif system and system_bypass is not None and system_bypass(host):
        return Decision(None, f"the system proxy settings exclude {host}", matched="system")
    proxies = python_proxies(env, system)
    chosen = proxies.get(url.scheme) or proxies.get("all")
    if chosen is None:
        return Decision(None, f"no proxy variable applies to {url.scheme}:// URLs")
    value, source = chosen
    why = f"{source} applies; no NO_PROXY entry covers {host}"
    if proxy_scheme(value) in ("socks5", "socks5h", "socks4", "socks4a"):
        why += " (SOCKS needs PySocks: pip install 'requests[socks]')"
    return Decision(with_scheme(value), why, source=source)


def _is_plain_ipv4(host: str) -> bool:
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        return False
    return True


def _requests_cidr(entry: str) -> bool:
    """requests.utils.is_valid_cidr: ``a.b.c.d/N`` with 1 ≤ N ≤ 32."""
    if entry.count("/") != 1:
        return False
    address, mask = entry.split("/")
    if not mask.isdigit() or not 1 <= int(mask) <= 32:
        return False
    return _is_plain_ipv4(address)


def _urllib_bypass(host: str, proxies: Mapping[str, tuple[str, str]]) -> str | None:
    """urllib.request.proxy_bypass_environment: the matching entry, or None.

    Entries are DNS suffixes with leading dots ignored; ``*`` alone bypasses everything.
    """
    if "no" not in proxies:
        return None
    no_proxy = proxies["no"][0]
    if no_proxy == "*":
        return "*"
    host = host.lower()
    match = re.fullmatch(r"(.*):([0-9]*)", host, re.DOTALL)
    hostonly = match.group(1) if match else host
    for name in no_proxy.split(","):
        name = name.strip()
        if not name:
            continue
        bare = name.lstrip(".").lower()
        if hostonly == bare or host == bare:
            return name
        if hostonly.endswith("." + bare) or host.endswith("." + bare):
            return name
    return None


# -- curl (lib/url.c detect_proxy, lib/noproxy.c Curl_check_noproxy; curl ≥ 7.86) ------------


def _curl(url: _Url, env: Mapping[str, str]) -> Decision:
    found = _first(env, "no_proxy", "NO_PROXY")  # curl_getenv: an empty value counts as unset
    if found:
        entry = _curl_noproxy(url.host, found[0])
        if entry is not None:
            return Decision(None, f"{found[1]} entry {entry!r} covers {url.host}", matched=entry)
    name = f"{url.scheme}_proxy"
    chosen = _first(env, name) if name == "http_proxy" else _first(env, name, name.upper())
    if chosen is None:
        chosen = _first(env, "all_proxy", "ALL_PROXY")
    if chosen is None:
        why = f"no proxy variable applies to {url.scheme}:// URLs"
        if url.scheme == "http" and env.get("HTTP_PROXY"):
            why = "curl ignores upper-case HTTP_PROXY (httpoxy); http_proxy is not set"
        return Decision(None, why)
    value, source = chosen
    return Decision(with_scheme(value), f"{source} applies; no NO_PROXY entry covers {url.host}",
                    source=source)


def _curl_noproxy(host: str, no_proxy: str) -> str | None:
    """Curl_check_noproxy: the matching entry, or None.

    ``*`` only as the whole value; entries separated by commas (and blanks); for a host name a
    case-insensitive tail match on a dot boundary (leading and trailing dots ignored, ports are
    not compared); for an IP address only IP entries match, exactly or as CIDR ranges.
    """
    if no_proxy == "*":
        return "*"
    ip = _ip(host)
    name = host if ip is not None else host.rstrip(".")
    for token in _curl_tokens(no_proxy):
        if ip is None:
            check = token.rstrip(".")
            if check.startswith("."):
                check = check[1:]
            check = check.lower()
            if not check:
                continue
            if name == check or (len(check) < len(name) and name.endswith("." + check)):
                return token
            continue
        address, _, bits_text = token.partition("/")
        try:
            network = ipaddress.ip_network(
                f"{address}/{bits_text}" if bits_text and bits_text != "0" else address,
                strict=False)
        except ValueError:
            continue
        if network.version == ip.version and ip in network:
            return token
    return None


def _curl_tokens(no_proxy: str) -> list[str]:
    """Tokens as curl's loop reads them: commas separate, blanks around them are skipped, and
    anything else after a blank ends the list ("a b,c" is just "a")."""
    tokens: list[str] = []
    i, n = 0, len(no_proxy)
    while i < n:
        while i < n and no_proxy[i] in " \t":
            i += 1
        start = i
        while i < n and no_proxy[i] not in " \t,":
            i += 1
        if i > start:
            tokens.append(no_proxy[start:i])
        while i < n and no_proxy[i] in " \t":
            i += 1
        if i >= n or no_proxy[i] != ",":
            break
        while i < n and no_proxy[i] == ",":
            i += 1
    return tokens


# -- Go (golang.org/x/net/http/httpproxy: FromEnvironment, config.proxyForURL, useProxy) ------


def _go(url: _Url, env: Mapping[str, str]) -> Decision:
    if url.scheme == "https":
        chosen = _first(env, "HTTPS_PROXY", "https_proxy")
    else:
        chosen = _first(env, "HTTP_PROXY", "http_proxy")
    if chosen is None:
        why = f"no proxy variable applies to {url.scheme}:// URLs"
        if _first(env, "ALL_PROXY", "all_proxy"):
            why += " (Go does not read ALL_PROXY)"
        return Decision(None, why)
    value, source = chosen
    if url.scheme == "http" and env.get("REQUEST_METHOD"):
        return Decision(None, f"Go refuses {source} in a CGI environment (REQUEST_METHOD is "
                              "set): the call fails", source=source)
    if url.host == "localhost":
        return Decision(None, "Go never proxies 'localhost'")
    ip = _ip(url.host)
    if ip is not None and ip.is_loopback:
        return Decision(None, f"Go never proxies loopback addresses ({url.host})")
    found = _first(env, "NO_PROXY", "no_proxy")
    if found:
        entry = _go_noproxy(url.host, str(url.effective_port), found[0])
        if entry is not None:
            return Decision(None, f"{found[1]} entry {entry!r} covers {url.host}", matched=entry)
    return Decision(with_scheme(value), f"{source} applies; no NO_PROXY entry covers {url.host}",
                    source=source)


def _go_noproxy(host: str, port: str, no_proxy: str) -> str | None:
    """httpproxy config.init + useProxy: the matching entry, or None.

    ``*`` anywhere bypasses everything; ``a.b.c.d/n`` and ``v6/n`` are CIDR ranges; IP entries
    (optionally ``ip:port`` / ``[v6]:port``) match equal addresses; names match themselves and
    subdomains (``.name`` and ``*.name`` only subdomains), optionally with ``:port``.
    """
    ip = _ip(host)
    for raw in no_proxy.split(","):
        entry = raw.strip().lower()
        if entry and _go_noproxy_matches(entry, host, ip, port):
            return raw.strip()
    return None


def _go_noproxy_matches(entry: str, host: str,
                        ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None,
                        port: str) -> bool:
    """Whether one lower-cased NO_PROXY entry covers ``host`` (``ip`` when it is a literal)."""
    if entry == "*":
        return True
    if "/" in entry:
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            pass  # not a CIDR range: read it as a host
        else:
            return ip is not None and ip.version == network.version and ip in network
    phost, pport = entry, ""
    split = _go_split_host_port(entry)
    if split is not None:
        phost, pport = split
        if not phost:
            return False
    entry_ip = _go_ip(phost)
    if entry_ip is not None:
        return ip is not None and ip == entry_ip and pport in ("", port)
    if ip is not None:
        return False  # recent x/net: domain entries never match IP literals
    return _go_domain_matches(phost, host) and pport in ("", port)


def _go_domain_matches(phost: str, host: str) -> bool:
    """A name entry: itself and its subdomains; ``.name`` and ``*.name`` only subdomains."""
    if phost.startswith("*."):
        phost = phost[1:]
    match_host = not phost.startswith(".")
    if match_host:
        phost = "." + phost
    return host.endswith(phost) or (match_host and host == phost[1:])


def _go_split_host_port(text: str) -> tuple[str, str] | None:
    """net.SplitHostPort: ``host:port`` / ``[v6]:port`` → (host, port); None when it errs."""
    m = re.fullmatch(r"\[([^\[\]]*)\]:([^:\[\]]*)|([^:\[\]]*):([^:\[\]]*)", text)
    if m is None:
        return None
    if m.group(1) is not None:
        return m.group(1), m.group(2)
    return m.group(3), m.group(4)


def _go_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """net.ParseIP: no brackets, no zone."""
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


# -- Node (lib/internal/http.js parseProxyConfigFromEnv, ProxyConfig; Node ≥ 24 / 22.21) -------


def _node(url: _Url, env: Mapping[str, str]) -> Decision:
    if env.get("NODE_USE_ENV_PROXY") != "1":
        return Decision(None, "Node ignores proxy variables unless NODE_USE_ENV_PROXY=1 "
                              "(Node ≥ 24, or 22.21) or --use-env-proxy")
    if url.scheme == "https":
        chosen = _first(env, "https_proxy", "HTTPS_PROXY")
    else:
        chosen = _first(env, "http_proxy", "HTTP_PROXY")
    if chosen is None:
        return Decision(None, f"NODE_USE_ENV_PROXY=1 but no proxy variable applies to "
                              f"{url.scheme}:// URLs (Node does not read ALL_PROXY)")
    value, source = chosen
    if not value.startswith(("http://", "https://")):
        return Decision(None, f"Node ignores {source}: only http:// and https:// proxies are "
                              "supported")
    found = _first(env, "no_proxy", "NO_PROXY")
    if found:
        entries = [e.strip().lower() for e in found[0].split(",")]
        if "*" in entries:
            return Decision(None, f"{found[1]} contains '*'", matched="*")
        with_port = f"{url.host}:{url.port}" if url.port else url.host
        for entry in entries:
            if entry.startswith(("*.", ".")):
                suffix = entry[1:]  # a bare suffix test, as in Node: ".example.com" → no dot
                if not suffix or url.host.endswith(suffix):
                    return Decision(None, f"{found[1]} entry {entry!r} covers {url.host}",
                                    matched=entry)
                continue
            if "-" in entry:
                start, _, end = (part.strip() for part in entry.partition("-"))
                if _is_plain_ipv4(start) and _is_plain_ipv4(end):
                    if _is_plain_ipv4(url.host) and (
                            ipaddress.IPv4Address(start) <= ipaddress.IPv4Address(url.host)
                            <= ipaddress.IPv4Address(end)):
                        return Decision(None, f"{found[1]} range {entry!r} covers {url.host}",
                                        matched=entry)
                    continue
            if entry in (url.host, with_port):
                return Decision(None, f"{found[1]} entry {entry!r} is {url.host}",
                                matched=entry)
    return Decision(value, f"NODE_USE_ENV_PROXY=1 and {source} applies; no NO_PROXY entry "
                           f"covers {url.host}", source=source)


# --------------------------------------------------------------------------------------------
# The fix


def no_proxy_entries(env: Mapping[str, str]) -> list[str]:
    """The entries of ``no_proxy`` and ``NO_PROXY`` (both: clients read different ones), in
    order, without duplicates."""
    out: list[str] = []
    seen: set[str] = set()
    for name in ("no_proxy", "NO_PROXY"):
        for entry in env.get(name, "").replace(" ", ",").split(","):
            entry = entry.strip()
            if entry and entry.lower() not in seen:
                seen.add(entry.lower())
                out.append(entry)
    return out


def recommended_no_proxy(env: Mapping[str, str], host: str) -> str:
    """The ``NO_PROXY`` value to set: what is there now, plus ``localhost,127.0.0.1,::1`` and
    the target host. Each family matches differently, so all three loopback spellings are
    listed rather than a range (httpx ignores CIDR ranges, Node has none)."""
    entries = no_proxy_entries(env)
    seen = {e.lower() for e in entries}
    for entry in (*LOCAL_ENTRIES, host.strip("[]").lower()):
        if entry and entry not in seen:
            seen.add(entry)
            entries.append(entry)
    return ",".join(entries)


def disagreement(decisions: Mapping[Family, Decision]) -> dict[str, list[Family]]:
    """Families grouped by route; more than one group means they disagree."""
    groups: dict[str, list[Family]] = {}
    for family, decision in decisions.items():
        label = "direct" if decision.proxy_url is None else redact_proxy(decision.proxy_url)
        groups.setdefault(label, []).append(family)
    return groups
