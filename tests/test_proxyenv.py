"""``proxyenv``: which proxy each client family uses, by table, and cross-checked against the real
httpx and urllib where they can be asked."""

from __future__ import annotations

import itertools
import os
import ssl
import urllib.request
from collections.abc import Iterator
from unittest import mock

import httpx
import pytest

from ollama_doctor.proxyenv import (
    Family,
    _urllib_bypass,
    decide_all,
    disagreement,
    httpx_client_error,
    no_proxy_entries,
    proxy_for,
    proxy_variables,
    python_env_proxies,
    python_proxies,
    recommended_no_proxy,
    redact_proxy,
)

P = "http://proxy.corp:3128"
Q = "http://other.corp:8080"
LOCAL = "http://127.0.0.1:11434/"

# --------------------------------------------------------------------------------------------
# reading the variables: urllib.request.getproxies_environment over a mapping


@pytest.mark.parametrize(("env", "expected"), [
    ({}, {}),
    ({"HTTP_PROXY": P}, {"http": (P, "HTTP_PROXY")}),
    ({"HTTP_PROXY": P, "http_proxy": Q}, {"http": (Q, "http_proxy")}),  # lower case wins
    ({"http_proxy": Q, "HTTP_PROXY": P}, {"http": (Q, "http_proxy")}),  # whatever the order
    ({"HTTP_PROXY": P, "http_proxy": ""}, {}),  # an empty lower-case one removes it
    ({"HTTP_PROXY": ""}, {}),
    ({"Http_Proxy": P}, {"http": (P, "Http_Proxy")}),  # a lower-case suffix counts as lower
    ({"HTTP_PROXY": P, "REQUEST_METHOD": "GET"}, {}),  # CGI: upper-case HTTP_PROXY dropped
    ({"http_proxy": P, "REQUEST_METHOD": "GET"}, {"http": (P, "http_proxy")}),
    ({"ALL_PROXY": P, "NO_PROXY": "a", "FTP_PROXY": Q},
     {"all": (P, "ALL_PROXY"), "no": ("a", "NO_PROXY"), "ftp": (Q, "FTP_PROXY")}),
])
def test_python_env_proxies(env: dict[str, str], expected: dict[str, tuple[str, str]]) -> None:
    assert python_env_proxies(env) == expected


@pytest.mark.parametrize("env", [
    {"HTTP_PROXY": "a", "http_proxy": "b"}, {"HTTP_PROXY": "a", "http_proxy": ""},
    {"Http_Proxy": "x"}, {"HTTP_PROXY": "a", "REQUEST_METHOD": "GET"},
    {"http_proxy": "a", "REQUEST_METHOD": "GET", "NO_PROXY": "x", "no_proxy": ""},
    {"ALL_PROXY": "s", "all_proxy": "t", "HTTPS_PROXY": "u", "NO_PROXY": "v"},
])
def test_python_env_proxies_agrees_with_urllib(env: dict[str, str]) -> None:
    with mock.patch.dict(os.environ, env, clear=True):
        real = urllib.request.getproxies_environment()
    assert {k: v for k, (v, _) in python_env_proxies(env).items()} == real


def test_system_settings_only_when_the_environment_has_no_proxy_variable() -> None:
    system = {"http": "http://sys:8080", "https": "http://sys:8080"}
    assert python_proxies({}, system) == {"http": ("http://sys:8080", "system"),
                                          "https": ("http://sys:8080", "system")}
    # getproxies() returns the environment when it has *any* *_proxy variable, even NO_PROXY
    assert python_proxies({"NO_PROXY": "localhost"}, system) == {"no": ("localhost", "NO_PROXY")}
    d = proxy_for(LOCAL, {}, "httpx", system=system)
    assert (d.proxy_url, d.source) == ("http://sys:8080", "system")
    assert proxy_for(LOCAL, {}, "curl", system=system).proxy_url is None  # curl: env only


def test_proxy_variables_lists_what_is_set() -> None:
    env = {"HTTP_PROXY": P, "no_proxy": "x", "EMPTY_PROXY": "", "PATH": "/bin",
           "NODE_USE_ENV_PROXY": "1", "REQUEST_METHOD": "GET"}
    assert proxy_variables(env) == {"HTTP_PROXY": P, "no_proxy": "x", "NODE_USE_ENV_PROXY": "1",
                                    "REQUEST_METHOD": "GET"}


# --------------------------------------------------------------------------------------------
# per family: (url, env, expected proxy or None)

Case = tuple[str, dict[str, str], str | None]

HTTPX: list[Case] = [
    (LOCAL, {"HTTP_PROXY": P}, P),  # no loopback bypass
    (LOCAL, {"HTTP_PROXY": P, "NO_PROXY": "localhost"}, P),  # localhost ≠ 127.0.0.1
    ("http://localhost:11434/", {"HTTP_PROXY": P, "NO_PROXY": "localhost"}, None),
    ("http://localhost:11434/", {"HTTP_PROXY": P, "NO_PROXY": "127.0.0.1"}, P),
    (LOCAL, {"HTTP_PROXY": P, "NO_PROXY": "localhost,127.0.0.1,::1"}, None),
    ("http://[::1]:11434/", {"HTTP_PROXY": P, "NO_PROXY": "::1"}, None),
    ("http://[::1]:11434/", {"HTTP_PROXY": P, "NO_PROXY": "127.0.0.1"}, P),
    (LOCAL, {"HTTP_PROXY": P, "NO_PROXY": "127.0.0.0/8"}, P),  # CIDR: only the address itself
    ("http://127.0.0.0:11434/", {"HTTP_PROXY": P, "NO_PROXY": "127.0.0.0/8"}, None),
    (LOCAL, {"HTTP_PROXY": P, "NO_PROXY": "*"}, None),
    (LOCAL, {"HTTP_PROXY": P, "NO_PROXY": "localhost,*"}, None),  # '*' as any entry
    (LOCAL, {"HTTP_PROXY": P, "NO_PROXY": " localhost , 127.0.0.1 "}, None),
    (LOCAL, {"HTTP_PROXY": P, "NO_PROXY": "127.0.0.1:11434"}, None),  # port entries work
    (LOCAL, {"HTTP_PROXY": P, "NO_PROXY": "127.0.0.1:8080"}, P),
    (LOCAL, {"HTTP_PROXY": P, "no_proxy": "127.0.0.1", "NO_PROXY": "x"}, None),  # lower wins
    (LOCAL, {"HTTP_PROXY": P, "no_proxy": "x", "NO_PROXY": "127.0.0.1"}, P),
    ("http://api.example.com/", {"HTTP_PROXY": P, "NO_PROXY": "example.com"}, None),
    ("http://example.com/", {"HTTP_PROXY": P, "NO_PROXY": "example.com"}, None),
    ("http://notexample.com/", {"HTTP_PROXY": P, "NO_PROXY": "example.com"}, P),
    ("http://example.com/", {"HTTP_PROXY": P, "NO_PROXY": ".example.com"}, P),
    ("http://a.example.com/", {"HTTP_PROXY": P, "NO_PROXY": ".example.com"}, None),
    (LOCAL, {"ALL_PROXY": P}, P),
    (LOCAL, {"ALL_PROXY": Q, "HTTP_PROXY": P}, P),  # scheme-specific before all://
    (LOCAL, {"HTTPS_PROXY": P}, None),
    ("https://ollama.com/", {"HTTPS_PROXY": P, "HTTP_PROXY": Q}, P),
    (LOCAL, {"HTTP_PROXY": "proxy.corp:3128"}, P),  # no scheme → http://
    (LOCAL, {"http_proxy": Q, "HTTP_PROXY": P}, Q),
    (LOCAL, {"HTTP_PROXY": P, "REQUEST_METHOD": "POST"}, None),  # CGI
    ("http://0.0.0.0:11434/", {"HTTP_PROXY": P, "NO_PROXY": "localhost,127.0.0.1"}, P),
]


@pytest.mark.parametrize(("url", "env", "expected"), HTTPX)
def test_httpx(url: str, env: dict[str, str], expected: str | None) -> None:
    assert proxy_for(url, env, "httpx").proxy_url == expected


_SSL = ssl.create_default_context()


def _real_httpx(url: str, env: dict[str, str]) -> str | None:
    # one SSL context for all clients: building one per client is what makes this slow
    with mock.patch.dict(os.environ, env, clear=True), httpx.Client(verify=_SSL) as client:
        transport = client._transport_for_url(httpx.URL(url))
        if transport is client._transport:
            return None
        proxy = transport._pool._proxy_url  # type: ignore[attr-defined]
        return f"{proxy.scheme.decode()}://{proxy.host.decode()}:{proxy.port}"


CROSS_URLS = [LOCAL, "http://localhost:11434/", "http://[::1]:11434/", "http://ollama.lan:11434/",
              "https://api.example.com/", "http://myhost/", "http://10.1.2.3:11434/",
              "http://sub.example.com:8080/"]
CROSS_NO = [None, "localhost", "127.0.0.1", "localhost,127.0.0.1,::1", ".example.com",
            "example.com", "*", "10.0.0.0/8", "10.1.2.3", "host", "localhost:11434",
            "127.0.0.1:11434", "sub.example.com:8080", "::1", " lan , foo"]
CROSS_PROXIES = [{"HTTP_PROXY": P}, {"http_proxy": Q, "HTTP_PROXY": P}, {"ALL_PROXY": Q},
                 {"HTTPS_PROXY": "proxy.corp:3128"}, {"all_proxy": Q, "http_proxy": ""}]


def test_httpx_agrees_with_real_httpx() -> None:
    """Every combination above, asked of httpx itself (its private mount table)."""
    if not hasattr(httpx.Client, "_transport_for_url"):
        pytest.skip("this httpx has no _transport_for_url to compare against")
    wrong = []
    for url, no_proxy, proxies in itertools.product(CROSS_URLS, CROSS_NO, CROSS_PROXIES):
        env = dict(proxies, **({"NO_PROXY": no_proxy} if no_proxy is not None else {}))
        mine = proxy_for(url, env, "httpx").proxy_url
        if mine != _real_httpx(url, env):
            wrong.append((url, env, mine))
    assert wrong == []


def test_httpx_reasons_name_the_trap() -> None:
    d = proxy_for(LOCAL, {"HTTP_PROXY": P, "NO_PROXY": "localhost"}, "httpx")
    assert d.source == "HTTP_PROXY"
    assert d.reason == ("HTTP_PROXY applies to http:// URLs; no NO_PROXY entry matches "
                        "127.0.0.1 (httpx does not treat 'localhost' as covering IP addresses)")
    d = proxy_for(LOCAL, {"ALL_PROXY": P}, "httpx")
    assert d.reason == ("ALL_PROXY applies to every URL; NO_PROXY is not set, and httpx has no "
                        "loopback bypass")
    d = proxy_for(LOCAL, {"HTTP_PROXY": P, "NO_PROXY": "a,127.0.0.1"}, "httpx")
    assert (d.proxy_url, d.matched, d.route) == (None, "127.0.0.1", "direct")


REQUESTS: list[Case] = [
    (LOCAL, {"HTTP_PROXY": P}, P),
    (LOCAL, {"HTTP_PROXY": P, "NO_PROXY": "localhost"}, P),
    (LOCAL, {"HTTP_PROXY": P, "NO_PROXY": "127.0.0.0/8"}, None),  # CIDR works in requests
    (LOCAL, {"HTTP_PROXY": P, "NO_PROXY": "127.0.0.1"}, None),
    ("http://myhost/", {"HTTP_PROXY": P, "NO_PROXY": "host"}, None),  # a bare suffix test
    ("http://a.example.com/", {"HTTP_PROXY": P, "NO_PROXY": ".example.com"}, None),
    ("http://example.com/", {"HTTP_PROXY": P, "NO_PROXY": ".example.com"}, None),  # urllib
    ("http://h.lan:11434/", {"HTTP_PROXY": P, "NO_PROXY": "h.lan:11434"}, None),
    (LOCAL, {"HTTP_PROXY": P, "no_proxy": "x", "NO_PROXY": "127.0.0.1"}, P),  # lower first
    (LOCAL, {"ALL_PROXY": P}, P),
    (LOCAL, {"ALL_PROXY": Q, "HTTP_PROXY": P}, P),
    (LOCAL, {"HTTP_PROXY": P, "NO_PROXY": "*"}, None),
    ("https://ollama.com/", {"HTTP_PROXY": P}, None),
]


@pytest.mark.parametrize(("url", "env", "expected"), REQUESTS)
def test_requests(url: str, env: dict[str, str], expected: str | None) -> None:
    assert proxy_for(url, env, "requests").proxy_url == expected


def test_requests_uses_the_system_bypass_only_for_system_proxies() -> None:
    system = {"http": P}
    d = proxy_for(LOCAL, {}, "requests", system=system, system_bypass=lambda h: h == "127.0.0.1")
    assert (d.proxy_url, d.matched) == (None, "system")
    assert proxy_for(LOCAL, {}, "requests", system=system,
                     system_bypass=lambda h: False).proxy_url == P


@pytest.mark.parametrize(("host", "no_proxy"), list(itertools.product(
    ["127.0.0.1", "localhost", "::1", "ollama.lan", "api.example.com", "myhost", "example.com"],
    ["localhost", "127.0.0.1", "localhost,127.0.0.1,::1", ".example.com", "example.com", "*",
     "10.0.0.0/8", "host", "lan", " .lan , foo", "::1"])))
def test_urllib_bypass_agrees_with_urllib(host: str, no_proxy: str) -> None:
    bypass = getattr(urllib.request, "proxy_bypass_environment")  # noqa: B009 - not in typeshed
    real = bypass(host, {"no": no_proxy})
    assert (_urllib_bypass(host, {"no": (no_proxy, "NO_PROXY")}) is not None) == bool(real)


CURL: list[Case] = [
    (LOCAL, {"HTTP_PROXY": P}, None),  # curl never reads upper-case HTTP_PROXY
    (LOCAL, {"http_proxy": P}, P),
    ("https://ollama.com/", {"HTTPS_PROXY": P}, P),  # other schemes: either case
    ("https://ollama.com/", {"https_proxy": Q, "HTTPS_PROXY": P}, Q),
    (LOCAL, {"ALL_PROXY": P}, P),
    (LOCAL, {"all_proxy": Q, "ALL_PROXY": P}, Q),
    (LOCAL, {"http_proxy": P, "ALL_PROXY": Q}, P),
    (LOCAL, {"http_proxy": P, "NO_PROXY": "localhost"}, P),
    (LOCAL, {"http_proxy": P, "NO_PROXY": "127.0.0.0/8"}, None),  # CIDR (curl ≥ 7.86)
    (LOCAL, {"http_proxy": P, "NO_PROXY": "127.0.0.2/32"}, P),
    (LOCAL, {"http_proxy": P, "NO_PROXY": "*"}, None),
    (LOCAL, {"http_proxy": P, "NO_PROXY": "localhost,*"}, P),  # '*' only as the whole value
    ("http://[::1]:11434/", {"http_proxy": P, "NO_PROXY": "::1"}, None),
    ("http://[::1]:11434/", {"http_proxy": P, "NO_PROXY": "::/0"}, P),  # /0 means exact
    ("http://[::1]:11434/", {"http_proxy": P, "NO_PROXY": "::1/128"}, None),
    ("http://example.com/", {"http_proxy": P, "NO_PROXY": ".example.com"}, None),
    ("http://a.EXAMPLE.com/", {"http_proxy": P, "NO_PROXY": "example.COM"}, None),
    ("http://nonexample.com/", {"http_proxy": P, "NO_PROXY": "example.com"}, P),
    ("http://example.com/", {"http_proxy": P, "NO_PROXY": "example.com."}, None),
    ("http://c.lan/", {"http_proxy": P, "NO_PROXY": "a.lan b.lan,c.lan"}, P),  # blank ends it
    ("http://c.lan/", {"http_proxy": P, "NO_PROXY": "a.lan , c.lan"}, None),
    ("http://h.lan:11434/", {"http_proxy": P, "NO_PROXY": "h.lan:11434"}, P),  # no ports
    (LOCAL, {"http_proxy": P, "no_proxy": "", "NO_PROXY": "127.0.0.1"}, None),  # empty = unset
]


@pytest.mark.parametrize(("url", "env", "expected"), CURL)
def test_curl(url: str, env: dict[str, str], expected: str | None) -> None:
    assert proxy_for(url, env, "curl").proxy_url == expected


def test_curl_says_why_it_ignores_http_proxy() -> None:
    assert proxy_for(LOCAL, {"HTTP_PROXY": P}, "curl").reason == (
        "curl ignores upper-case HTTP_PROXY (httpoxy); http_proxy is not set")


GO: list[Case] = [
    (LOCAL, {"HTTP_PROXY": P}, None),  # loopback is never proxied
    ("http://localhost:11434/", {"HTTP_PROXY": P}, None),
    ("http://[::1]:11434/", {"HTTP_PROXY": P}, None),
    ("http://127.8.9.10:11434/", {"HTTP_PROXY": P}, None),
    ("http://0.0.0.0:11434/", {"HTTP_PROXY": P}, P),  # not loopback to Go
    ("http://ollama.lan:11434/", {"HTTP_PROXY": P}, P),
    ("http://ollama.lan:11434/", {"HTTP_PROXY": P, "http_proxy": Q}, P),  # upper case wins
    ("http://ollama.lan:11434/", {"ALL_PROXY": P}, None),  # Go has no ALL_PROXY
    ("http://ollama.lan:11434/", {"HTTP_PROXY": P, "NO_PROXY": "ollama.lan"}, None),
    ("http://a.ollama.lan:11434/", {"HTTP_PROXY": P, "NO_PROXY": "ollama.lan"}, None),
    ("http://ollama.lan:11434/", {"HTTP_PROXY": P, "NO_PROXY": ".ollama.lan"}, P),
    ("http://a.ollama.lan:11434/", {"HTTP_PROXY": P, "NO_PROXY": "*.ollama.lan"}, None),
    ("http://ollama.lan:11434/", {"HTTP_PROXY": P, "NO_PROXY": "ollama.lan:11434"}, None),
    ("http://ollama.lan:11434/", {"HTTP_PROXY": P, "NO_PROXY": "ollama.lan:80"}, P),
    ("http://10.1.2.3:11434/", {"HTTP_PROXY": P, "NO_PROXY": "10.0.0.0/8"}, None),
    ("http://10.1.2.3:11434/", {"HTTP_PROXY": P, "NO_PROXY": "10.1.2.3:11434"}, None),
    ("http://10.1.2.3:11434/", {"HTTP_PROXY": P, "NO_PROXY": "10.1.2.3:80"}, P),
    ("http://[fd00::1]:11434/", {"HTTP_PROXY": P, "NO_PROXY": "[fd00::1]:11434"}, None),
    ("http://10.1.2.3:11434/", {"HTTP_PROXY": P, "NO_PROXY": "a,*"}, None),
    ("http://ollama.lan:11434/", {"HTTP_PROXY": P, "NO_PROXY": "x", "no_proxy": "ollama.lan"},
     P),  # NO_PROXY first
    ("https://ollama.com/", {"HTTPS_PROXY": P}, P),
    ("http://ollama.lan:11434/", {"HTTP_PROXY": P, "REQUEST_METHOD": "GET"}, None),
]


@pytest.mark.parametrize(("url", "env", "expected"), GO)
def test_go(url: str, env: dict[str, str], expected: str | None) -> None:
    assert proxy_for(url, env, "go").proxy_url == expected


NODE: list[Case] = [
    (LOCAL, {"HTTP_PROXY": P}, None),  # ignored by default
    (LOCAL, {"HTTP_PROXY": P, "NODE_USE_ENV_PROXY": "1"}, P),
    (LOCAL, {"HTTP_PROXY": P, "http_proxy": Q, "NODE_USE_ENV_PROXY": "1"}, Q),
    (LOCAL, {"ALL_PROXY": P, "NODE_USE_ENV_PROXY": "1"}, None),
    (LOCAL, {"HTTP_PROXY": "socks5://s:1080", "NODE_USE_ENV_PROXY": "1"}, None),
    (LOCAL, {"HTTP_PROXY": P, "NODE_USE_ENV_PROXY": "1", "NO_PROXY": "127.0.0.1"}, None),
    (LOCAL, {"HTTP_PROXY": P, "NODE_USE_ENV_PROXY": "1", "NO_PROXY": "localhost"}, P),
    (LOCAL, {"HTTP_PROXY": P, "NODE_USE_ENV_PROXY": "1", "NO_PROXY": "127.0.0.1:11434"}, None),
    (LOCAL, {"HTTP_PROXY": P, "NODE_USE_ENV_PROXY": "1",
             "NO_PROXY": "127.0.0.0-127.0.0.255"}, None),
    (LOCAL, {"HTTP_PROXY": P, "NODE_USE_ENV_PROXY": "1", "NO_PROXY": "x, *"}, None),
    ("http://a.example.com/", {"HTTP_PROXY": P, "NODE_USE_ENV_PROXY": "1",
                               "NO_PROXY": ".example.com"}, None),
    ("http://a.example.com/", {"HTTP_PROXY": P, "NODE_USE_ENV_PROXY": "1",
                               "NO_PROXY": "example.com"}, P),  # plain entries: exact only
]


@pytest.mark.parametrize(("url", "env", "expected"), NODE)
def test_node(url: str, env: dict[str, str], expected: str | None) -> None:
    assert proxy_for(url, env, "node").proxy_url == expected


def test_node_says_it_ignores_the_variables() -> None:
    assert proxy_for(LOCAL, {"HTTP_PROXY": P}, "node").reason == (
        "Node ignores proxy variables unless NODE_USE_ENV_PROXY=1 (Node ≥ 24, or 22.21) or "
        "--use-env-proxy")


def test_unknown_family_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown client family"):
        proxy_for(LOCAL, {}, "wget")  # type: ignore[arg-type]


def test_the_classic_disagreement() -> None:
    """HTTP_PROXY + NO_PROXY=localhost, target 127.0.0.1: curl and the ollama CLI work,
    ollama-python goes to the proxy (failure-modes.md mode 5)."""
    env = {"HTTP_PROXY": P, "NO_PROXY": "localhost"}
    routes = {f: d.route for f, d in decide_all(LOCAL, env).items()}
    assert routes == {"httpx": "proxy", "requests": "proxy", "curl": "direct", "go": "direct",
                      "node": "direct"}
    assert disagreement(decide_all(LOCAL, env)) == {P: ["httpx", "requests"],
                                                    "direct": ["curl", "go", "node"]}


@pytest.mark.parametrize("family", ["httpx", "requests", "curl", "go", "node"])
def test_recommended_value_makes_every_family_direct(family: Family) -> None:
    env = {"HTTP_PROXY": P, "http_proxy": P, "NODE_USE_ENV_PROXY": "1", "NO_PROXY": "corp.lan"}
    for host in ("127.0.0.1", "localhost", "::1", "ollama.lan", "192.168.1.20"):
        url = f"http://{'[' + host + ']' if ':' in host else host}:11434/"
        value = recommended_no_proxy(env, host)
        fixed = {**env, "NO_PROXY": value, "no_proxy": value}
        assert proxy_for(url, fixed, family).proxy_url is None, (family, host, value)


# --------------------------------------------------------------------------------------------
# building an httpx client at all


@pytest.mark.parametrize(("env", "socks", "kind", "variable"), [
    ({"ALL_PROXY": "socks5://127.0.0.1:1080"}, False, "socks-missing", "ALL_PROXY"),
    ({"ALL_PROXY": "socks5://127.0.0.1:1080"}, True, None, None),
    ({"all_proxy": "socks5h://127.0.0.1:1080"}, False, "socks-missing", "all_proxy"),
    ({"ALL_PROXY": "socks4://127.0.0.1:1080"}, True, "unknown-scheme", "ALL_PROXY"),
    ({"HTTPS_PROXY": "pac+http://wpad/proxy.pac"}, True, "unknown-scheme", "HTTPS_PROXY"),
    # every mount is built, so NO_PROXY covering the target does not help …
    ({"ALL_PROXY": "socks5://127.0.0.1:1080", "NO_PROXY": "127.0.0.1"}, False, "socks-missing",
     "ALL_PROXY"),
    # … except '*', which leaves no mounts at all
    ({"ALL_PROXY": "socks5://127.0.0.1:1080", "NO_PROXY": "*"}, False, None, None),
    ({"HTTP_PROXY": "http://proxy:3128", "HTTPS_PROXY": "https://proxy:3129"}, False, None, None),
    ({}, False, None, None),
])
def test_httpx_client_error(env: dict[str, str], socks: bool, kind: str | None,
                            variable: str | None) -> None:
    error = httpx_client_error(env, None, socks)
    assert (error.kind if error else None, error.variable if error else None) == (kind, variable)


@pytest.mark.parametrize(("env", "raises"), [
    ({"ALL_PROXY": "socks4://127.0.0.1:1080"}, ValueError),
    ({"HTTPS_PROXY": "ftp://proxy:2121"}, ValueError),
])
def test_httpx_client_error_agrees_with_httpx(env: dict[str, str],
                                              raises: type[Exception]) -> None:
    error = httpx_client_error(env, None, True)
    assert error is not None
    with mock.patch.dict(os.environ, env, clear=True), pytest.raises(raises) as info:
        httpx.Client()
    assert str(info.value) == error.message.split(": ", 1)[1]


def test_httpx_client_error_masks_credentials() -> None:
    error = httpx_client_error({"ALL_PROXY": "socks4://bob:pa55word@10.0.0.1:1080"}, None, True)
    assert error is not None
    assert "pa55word" not in error.message + error.proxy_url
    assert error.message == "ValueError: Unknown scheme for proxy URL URL('socks4://bob:***@" \
                            "10.0.0.1:1080')"


# --------------------------------------------------------------------------------------------
# the fix and the redaction


@pytest.mark.parametrize(("env", "host", "expected"), [
    ({}, "127.0.0.1", "localhost,127.0.0.1,::1"),
    ({"NO_PROXY": "corp.lan,.internal"}, "127.0.0.1", "corp.lan,.internal,localhost,127.0.0.1,::1"),
    ({"no_proxy": "a", "NO_PROXY": "b,A"}, "ollama.lan", "a,b,localhost,127.0.0.1,::1,ollama.lan"),
    ({"NO_PROXY": "LOCALHOST, 127.0.0.1"}, "::1", "LOCALHOST,127.0.0.1,::1"),
    ({}, "[fd00::5]", "localhost,127.0.0.1,::1,fd00::5"),
    ({}, "0.0.0.0", "localhost,127.0.0.1,::1,0.0.0.0"),
    ({"NO_PROXY": "a b"}, "localhost", "a,b,localhost,127.0.0.1,::1"),
])
def test_recommended_no_proxy(env: dict[str, str], host: str, expected: str) -> None:
    assert recommended_no_proxy(env, host) == expected


def test_no_proxy_entries_merges_both_spellings() -> None:
    assert no_proxy_entries({"no_proxy": "x, y", "NO_PROXY": "Y,z"}) == ["x", "y", "z"]


@pytest.mark.parametrize(("value", "shown"), [
    ("http://bob:s3cret@proxy:3128", "http://bob:***@proxy:3128"),
    ("bob:s3cret@proxy:3128", "bob:***@proxy:3128"),
    ("socks5h://u:p%40ss@[fd00::1]:1080", "socks5h://u:***@[fd00::1]:1080"),
    ("http://proxy:3128", "http://proxy:3128"),
    ("proxy:3128", "proxy:3128"),
])
def test_redact_proxy(value: str, shown: str) -> None:
    assert redact_proxy(value) == shown


@pytest.fixture(autouse=True)
def _no_real_proxies() -> Iterator[None]:
    """The pure functions never look at the real environment: prove it by planting a proxy."""
    with mock.patch.dict(os.environ, {"HTTP_PROXY": "http://leak:1", "NO_PROXY": "*"}):
        yield


# --------------------------------------------------------------------------------------------
# Context.route: the one place the client's path is decided (--client picks the family)


@pytest.mark.parametrize(("client", "env", "route", "source"), [
    ("ollama-python", {"HTTP_PROXY": "http://p:3128"}, "proxy", "HTTP_PROXY"),
    ("curl", {"HTTP_PROXY": "http://p:3128"}, "direct", None),
    ("curl", {"http_proxy": "http://p:3128"}, "proxy", "http_proxy"),
    ("ollama-js", {"HTTP_PROXY": "http://p:3128"}, "direct", None),
    ("ollama-js", {"HTTP_PROXY": "http://p:3128", "NODE_USE_ENV_PROXY": "1"}, "proxy",
     "HTTP_PROXY"),
    ("ollama-cli", {"HTTP_PROXY": "http://p:3128"}, "proxy", "HTTP_PROXY"),
    ("browser", {"HTTP_PROXY": "http://p:3128"}, "direct", None),
    ("openai-python", {"HTTP_PROXY": "http://p:3128", "NO_PROXY": "ollama.lan"}, "direct",
     None),
])
def test_context_route_follows_the_clients_family(client: str, env: dict[str, str],
                                                  route: str, source: str | None) -> None:
    from ollama_doctor.context import Context, Options
    from ollama_doctor.target import parse_target

    ctx = Context(target=parse_target("http://ollama.lan:11434"), options=Options(client=client),
                  env=env)
    decided = ctx.route()
    assert (decided.to_dict()["route"], decided.source) == (route, source)
    assert ctx.route() is decided  # decided once
    assert decided.describe() == ("direct" if route == "direct"
                                  else f"via proxy http://p:3128 ({source})")


def test_go_never_proxies_loopback_but_python_does() -> None:
    from ollama_doctor.context import Context, Options
    from ollama_doctor.target import parse_target

    env = {"HTTP_PROXY": "http://user:pw@p:3128"}
    target = parse_target("http://127.0.0.1:11434")
    go = Context(target=target, options=Options(client="ollama-cli"), env=env).route()
    py = Context(target=target, options=Options(client="ollama-python"), env=env).route()
    assert (go.proxied, py.proxied) == (False, True)
    assert py.proxy == "http://user:pw@p:3128"  # used as is
    assert py.describe() == "via proxy http://user:***@p:3128 (HTTP_PROXY)"  # shown masked
    assert "pw" not in str(py.to_dict())


def test_a_proxy_scheme_this_tool_cannot_speak_is_probed_directly_with_a_note() -> None:
    from ollama_doctor.context import Context, Options
    from ollama_doctor.target import parse_target

    env = {"http_proxy": "socks4://p:1080"}
    route = Context(target=parse_target("http://ollama.lan:11434"),
                    options=Options(client="curl"), env=env).route()
    assert not route.proxied
    assert "socks4:// proxy this tool cannot speak; probed directly" in route.note
