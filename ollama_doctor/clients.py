"""The client families: what each client library does with the same call. One table.

A pasted error comes from one client, and that client decides which proxy variables it reads,
whether ``OLLAMA_HOST`` and ``OLLAMA_API_KEY`` reach it, which base path it calls under, how
long it waits and how often it retries. ``--client NAME`` (or the client detected in a pasted
error) selects a row; probes read the row instead of assuming ollama-python.

Each rule cites the client's own source at the version noted in ``CLIENTS``' docstrings:

- ollama-python ``ollama/_client.py`` (``BaseClient.__init__``: ``httpx.Client(base_url=
  _parse_host(host or os.getenv('OLLAMA_HOST')), …, timeout=None)``; ``OLLAMA_API_KEY`` →
  ``Authorization: Bearer``; ``httpx.ConnectError`` re-raised as ``ConnectionError(...) from
  None``).
- openai-python ``openai/_base_client.py`` / ``_constants.py`` (``DEFAULT_TIMEOUT`` 600 s,
  ``DEFAULT_MAX_RETRIES`` 2; retries on connection errors, 408, 409, 429 and ≥ 500); base URL
  from ``OPENAI_BASE_URL``, key from ``OPENAI_API_KEY`` (required, any value).
- langchain-ollama ``langchain_ollama/chat_models.py`` builds an ``ollama.Client`` (so it
  inherits ollama-python's rules).
- requests ``requests/sessions.py`` (``trust_env``; no default timeout).
- httpx ``httpx/_config.py`` (``DEFAULT_TIMEOUT_CONFIG`` 5 s; ``trust_env=True``).
- ollama-js ``src/browser.ts`` (``fetch`` — undici in Node, which reads no proxy variable;
  host default ``http://127.0.0.1:11434``).
- openai-node ``src/core.ts`` (timeout 10 min, ``maxRetries`` 2, ``fetch``).
- curl ``lib/url.c`` proxy detection (``http_proxy`` lower case only for http).
- the ollama CLI, Go ``envconfig.Host`` and ``net/http.ProxyFromEnvironment``.

Proxy rules themselves are in ``proxyenv`` (one function per proxy family); this table only
says which proxy family a client uses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ollama_doctor.proxyenv import Family


@dataclass(frozen=True)
class ClientFamily:
    """One client library as a user's app runs it."""

    name: str  # the --client value
    label: str  # how reports name it
    language: str  # python, node, go, shell, browser
    proxy_family: Family | None  # which proxyenv rules it follows; None = no proxy variables
    reads_ollama_host: bool
    reads_api_key: bool  # sends OLLAMA_API_KEY as a bearer token by itself
    base_path: str  # "" for the native API, "/v1" for OpenAI clients
    default_timeout_s: float | None  # None = waits forever
    retries: int  # automatic retries on connection errors / 5xx / 429
    default_port_rule: str  # what a scheme without a port means
    sends_origin: bool = False
    note: str = ""
    host_env: str = ""  # the variable its base URL comes from ("" = none)
    key_env: str = ""  # the variable it sends as ``Authorization: Bearer`` ("" = none)

    def rules(self) -> dict[str, object]:
        """The row as data, for ``ollama-doctor probes`` and reports."""
        return {"name": self.name, "label": self.label, "language": self.language,
                "proxy_family": self.proxy_family, "reads_ollama_host": self.reads_ollama_host,
                "reads_api_key": self.reads_api_key, "host_env": self.host_env or None,
                "key_env": self.key_env or None, "base_path": self.base_path,
                "default_timeout_s": self.default_timeout_s, "retries": self.retries,
                "default_port_rule": self.default_port_rule, "sends_origin": self.sends_origin,
                "note": self.note}


CLIENTS: tuple[ClientFamily, ...] = (
    ClientFamily(
        "ollama-python", "ollama-python", "python", "httpx", reads_ollama_host=True,
        reads_api_key=True, base_path="", default_timeout_s=None, retries=0,
        default_port_rule="http://host → :80, https://host → :443, host → :11434",
        note="Hides the reason for a failed connection behind 'Failed to connect to Ollama'.",
        host_env="OLLAMA_HOST", key_env="OLLAMA_API_KEY"),
    ClientFamily(
        "openai-python", "openai-python", "python", "httpx", reads_ollama_host=False,
        reads_api_key=False, base_path="/v1", default_timeout_s=600.0, retries=2,
        default_port_rule="the base_url as given (http → 80)",
        note="Needs api_key (any value) and base_url ending in /v1; retries twice.",
        host_env="OPENAI_BASE_URL", key_env="OPENAI_API_KEY"),
    ClientFamily(
        "langchain-ollama", "langchain-ollama", "python", "httpx", reads_ollama_host=True,
        reads_api_key=True, base_path="", default_timeout_s=None, retries=0,
        default_port_rule="as ollama-python (it builds an ollama.Client)",
        host_env="OLLAMA_HOST", key_env="OLLAMA_API_KEY"),
    ClientFamily(
        "requests", "requests", "python", "requests", reads_ollama_host=False,
        reads_api_key=False, base_path="", default_timeout_s=None, retries=0,
        default_port_rule="the URL as written (http → 80)"),
    ClientFamily(
        "httpx", "httpx", "python", "httpx", reads_ollama_host=False, reads_api_key=False,
        base_path="", default_timeout_s=5.0, retries=0,
        default_port_rule="the URL as written (http → 80)"),
    ClientFamily(
        "ollama-js", "ollama-js (npm ollama)", "node", "node", reads_ollama_host=False,
        reads_api_key=False, base_path="", default_timeout_s=300.0, retries=0,
        default_port_rule="http://host → :80, host → :11434",
        note="Node's fetch reads no proxy variable (unless NODE_USE_ENV_PROXY=1); the 300 s "
             "is undici's headersTimeout for a non-streamed answer."),
    ClientFamily(
        "openai-node", "openai-node (npm openai)", "node", "node", reads_ollama_host=False,
        reads_api_key=False, base_path="/v1", default_timeout_s=600.0, retries=2,
        default_port_rule="the baseURL as given (http → 80)",
        host_env="OPENAI_BASE_URL", key_env="OPENAI_API_KEY"),
    ClientFamily(
        "curl", "curl", "shell", "curl", reads_ollama_host=False, reads_api_key=False,
        base_path="", default_timeout_s=None, retries=0,
        default_port_rule="the URL as written (http → 80)",
        note="Reads http_proxy only in lower case for http:// URLs."),
    ClientFamily(
        "ollama-cli", "the ollama CLI (Go)", "go", "go", reads_ollama_host=True,
        reads_api_key=False, base_path="", default_timeout_s=None, retries=0,
        default_port_rule=":port → every interface; host → :11434",
        note="Go never proxies loopback addresses.", host_env="OLLAMA_HOST"),
    ClientFamily(
        "browser", "a browser or extension", "browser", None, reads_ollama_host=False,
        reads_api_key=False, base_path="", default_timeout_s=None, retries=0,
        default_port_rule="the URL as written", sends_origin=True,
        note="Sends an Origin header, which Ollama checks against OLLAMA_ORIGINS."),
)

BY_NAME: dict[str, ClientFamily] = {c.name: c for c in CLIENTS}
DEFAULT = BY_NAME["ollama-python"]

# Aliases a user may type for --client.
ALIASES: dict[str, str] = {
    "ollama": "ollama-python", "python": "ollama-python", "openai": "openai-python",
    "langchain": "langchain-ollama", "node": "ollama-js", "ollama-node": "ollama-js",
    "js": "ollama-js", "go": "ollama-cli", "cli": "ollama-cli",
}


def get(name: str | None) -> ClientFamily:
    """The row for a --client value (or an alias); ``DEFAULT`` for ``None``."""
    if name is None:
        return DEFAULT
    key = ALIASES.get(name.lower(), name.lower())
    if key not in BY_NAME:
        valid = ", ".join(BY_NAME)
        raise KeyError(f"unknown client {name!r}; valid clients: {valid}")
    return BY_NAME[key]


# --------------------------------------------------------------------------------------------
# Recognising the client in a pasted error. Most specific first: a traceback through
# langchain_ollama also shows ollama/_client.py and httpx frames; the outermost library the
# app called is the one whose rules apply.

SIGNATURES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(regex, re.IGNORECASE | re.MULTILINE)) for name, regex in (
        ("langchain-ollama", r"langchain_ollama[/\\.]|langchain-ollama|"
                             r"from langchain_ollama import"),
        ("openai-python", r"[/\\]openai[/\\]_(?:base_client|client)\.py|"
                          r"^openai\.[A-Z]\w{0,40}(?:Error|Exception)\b|"
                          r"\bopenai\.(?:APIConnectionError|APITimeoutError|APIStatusError)|"
                          r"^from openai import"),
        ("ollama-python", r"[/\\]ollama[/\\]_client\.py|ollama\._types\.ResponseError|"
                          r"Failed to connect to Ollama\. Please check|^import ollama$|"
                          r"^from ollama import"),
        ("openai-node", r"node_modules[/\\]openai[/\\]|from 'openai'|"
                        r"^(?:APIConnectionError: Connection error\.|"
                        r"APIConnectionTimeoutError: Request timed out\.|"
                        r"\w{1,40}Error: \d{3} status code \(no body\))"),
        ("ollama-js", r"node_modules[/\\]ollama[/\\]|ollama[/\\]dist[/\\]|from 'ollama'"),
        ("requests", r"[/\\]requests[/\\]|requests\.exceptions\.|HTTPS?ConnectionPool\(|"
                     r"^import requests\b"),
        ("httpx", r"[/\\]httpx[/\\]_|^httpx\.\w+|^httpcore\.\w+|^import httpx\b"),
        ("curl", r"^curl: \(\d{1,3}\)|^[$+] curl\s"),
        ("ollama-cli", r"could not connect to ollama (?:server|app)|"
                       r"ollama server logs for details"),
        ("browser", r"blocked by CORS policy|Mixed Content:"),
    ))


# Crashes in the app's own code (the library's frames are not in them): the shape of the
# answer the code reads says which client it used.
_PYTHON = re.compile(r"Traceback \(most recent call last\)")
# node without a library frame: fetch is what both node clients use; the native API client is
# the likelier one (openai-node wraps its failures in APIConnectionError, matched above)
_NODE_FETCH = re.compile(r"TypeError: fetch failed|\bUND_ERR_\w|node:internal|\[cause\]: |"
                         r"code: 'E[A-Z]{3,20}'")
_NODE = re.compile(r"file:///|node:internal|^Node\.js v\d", re.MULTILINE)
_OPENAI_SHAPE = re.compile(r"\.choices\b|'choices'")
_RAW_JSON = re.compile(r"\.json\(\)\[|json\.loads\((?:line|chunk|raw)\)\[")
_RAW_BODY = re.compile(r"\A\s{0,20}[{<]")


def detect(text: str) -> str | None:
    """The client family that printed ``text``, or ``None``. Pure; linear in the text.

    When no library frame or message names the client: ``.choices`` is the OpenAI SDKs'
    answer shape (python or node by the trace's form); ``r.json()[…]`` in a Python traceback
    is a raw HTTP client (requests, the commoner; httpx reads the same); a raw JSON or HTML
    body as the whole output is what curl prints."""
    for name, regex in SIGNATURES:
        if regex.search(text):
            return name
    if _OPENAI_SHAPE.search(text):
        if _PYTHON.search(text):
            return "openai-python"
        if _NODE.search(text):
            return "openai-node"
    if _PYTHON.search(text) and _RAW_JSON.search(text):
        return "requests"
    if _NODE_FETCH.search(text):
        return "ollama-js"
    if _RAW_BODY.search(text):
        return "curl"
    return None
