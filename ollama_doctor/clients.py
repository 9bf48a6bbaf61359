"""The client families: what each client library does with the same call. One table.

A pasted error comes from one client, and that client decides which proxy variables it reads,
whether ``OLLAMA_HOST`` and ``OLLAMA_API_KEY`` reach it, which base path it calls under, how
long it waits and how often it retries. ``--client NAME`` (or the client detected in a pasted
error) selects a row; probes read the row instead of assuming ollama-python.

A row also names the packages that install it (``packages``, what ``clientlibs`` finds in an
app's Python environment or project) and its known pitfalls, each with the versions of that
package it applies to (``pitfalls``). ``clientlibs.pitfalls`` reads them from this table; there
is no second pitfall table.

Each rule cites the client's own source; the version it was read at is in the comment next to
the value:

- ollama-python ``ollama/_client.py`` (``BaseClient.__init__``: ``httpx.Client(base_url=
  _parse_host(host or os.getenv('OLLAMA_HOST')), …, timeout=None)``; ``OLLAMA_API_KEY`` →
  ``Authorization: Bearer`` from 0.6.0; ``httpx.ConnectError`` re-raised as
  ``ConnectionError(...) from None``).
- openai-python ``openai/_base_client.py`` / ``_constants.py`` (``DEFAULT_TIMEOUT`` 600 s,
  ``DEFAULT_MAX_RETRIES`` 2; retries on connection errors, 408, 409, 429 and ≥ 500); base URL
  from ``OPENAI_BASE_URL``, key from ``OPENAI_API_KEY`` (required, any value).
- langchain-ollama ``langchain_ollama/chat_models.py`` builds an ``ollama.Client`` (so it
  inherits ollama-python's rules).
- requests ``requests/sessions.py`` (``trust_env``; no default timeout).
- httpx ``httpx/_config.py`` (``DEFAULT_TIMEOUT_CONFIG`` 5 s; ``trust_env=True``).
- ollama-js ``src/browser.ts`` (``fetch`` — undici in Node, which reads no proxy variable;
  host default ``http://127.0.0.1:11434``; ``src/utils.ts`` ``fetchWithHeaders`` sends
  ``OLLAMA_API_KEY`` only to ``https://ollama.com``, from 0.6.0).
- openai-node ``src/core.ts`` (timeout 10 min, ``maxRetries`` 2, ``fetch``).
- curl ``lib/url.c`` proxy detection (``http_proxy`` lower case only for http).
- the ollama CLI, Go ``envconfig.Host`` and ``net/http.ProxyFromEnvironment``.
- llama-index-llms-ollama ``llama_index/llms/ollama/base.py`` class ``Ollama`` (read at 0.1.0,
  0.3.0 and 0.11.0): ``DEFAULT_REQUEST_TIMEOUT = 30.0``; ``base_url`` default
  ``http://localhost:11434``, always passed on (0.1.x to its own ``httpx.Client``, 0.3.0 and
  later as ``ollama.Client(host=base_url, timeout=request_timeout)``), so ``OLLAMA_HOST`` is
  never read.
- litellm (read at 1.61.1, 1.99.4, 1.100.0 and 1.110.2): ``litellm/main.py`` ``completion``
  (``api_base`` or ``OLLAMA_API_BASE`` or ``http://localhost:11434``; ``OLLAMA_API_KEY`` as a
  bearer token; a timeout of 600 s unless one is given), ``litellm/__init__.py``
  (``num_retries = None``), ``litellm/llms/custom_httpx/http_handler.py`` ``HTTPHandler``
  (``httpx.Client``, environment proxies honoured) and
  ``litellm/litellm_core_utils/exception_mapping_utils.py`` ``exception_type``.
- @langchain/ollama ``libs/providers/langchain-ollama/src/chat_models.ts`` ``ChatOllama``
  (``new Ollama({host: baseUrl})`` from ollama-js, default ``http://127.0.0.1:11434``;
  ``OLLAMA_BASE_URL`` read from 1.1.0, langchainjs PR #9607; every call streams; no
  ``AsyncCaller``, so no retries).
- ollama-ai-provider ``packages/ollama/src/ollama-provider.ts`` ``createOllama`` (``baseURL``
  default ``http://127.0.0.1:11434/api`` since its first release, no variable; read at 1.2.0);
  the AI SDK's ``generateText``/``streamText`` retry twice (package ``ai``,
  ``core/prompt/prepare-retries.ts``: ``maxRetries ?? 2``).

Proxy rules themselves are in ``proxyenv`` (one function per proxy family); this table only
says which proxy family a client uses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ollama_doctor.proxyenv import Family
from ollama_doctor.result import Severity


@dataclass(frozen=True)
class Pitfall:
    """A known pitfall of one client family, for the versions of its package it applies to."""

    id: str
    versions: str  # "" = every version; else comma-joined clauses, e.g. "<0.3.0", ">=1.1.0"
    cause: str  # a cause id from ``causes.CAUSES``
    severity: Severity
    message: str
    fix: str
    commands: tuple[str, ...] = ()
    source: str = ""  # where the rule comes from (the library's own file)

    def rules(self) -> dict[str, object]:
        """The pitfall as data (``ClientFamily.rules``)."""
        return {"id": self.id, "versions": self.versions or "all versions",
                "cause": self.cause, "severity": self.severity.value,
                "message": self.message, "fix": self.fix, "commands": list(self.commands),
                "source": self.source}


@dataclass(frozen=True)
class ClientFamily:
    """One client library as a user's app runs it."""

    name: str  # the --client value
    label: str  # how reports name it
    language: str  # python, node, go, shell, browser
    proxy_family: Family | None  # which proxyenv rules it follows; None = no proxy variables
    reads_ollama_host: bool
    reads_api_key: bool  # sends OLLAMA_API_KEY as a bearer token by itself
    base_path: str  # "" for the native API, "/v1" for OpenAI clients, "/api" when it is in it
    default_timeout_s: float | None  # None = waits forever
    retries: int  # automatic retries on connection errors / 5xx / 429
    default_port_rule: str  # what a scheme without a port means
    sends_origin: bool = False
    note: str = ""
    host_env: str = ""  # the variable its base URL comes from ("" = none)
    key_env: str = ""  # the variable it sends as ``Authorization: Bearer`` ("" = none)
    # (ecosystem, package) pairs that install this client: ("pypi", "ollama"), ("npm", …).
    packages: tuple[tuple[str, str], ...] = ()
    pitfalls: tuple[Pitfall, ...] = ()  # versions refer to the packages above

    def rules(self) -> dict[str, object]:
        """The row as data, for ``ollama-doctor probes`` and reports."""
        return {"name": self.name, "label": self.label, "language": self.language,
                "proxy_family": self.proxy_family, "reads_ollama_host": self.reads_ollama_host,
                "reads_api_key": self.reads_api_key, "host_env": self.host_env or None,
                "key_env": self.key_env or None, "base_path": self.base_path,
                "default_timeout_s": self.default_timeout_s, "retries": self.retries,
                "default_port_rule": self.default_port_rule, "sends_origin": self.sends_origin,
                "note": self.note,
                "packages": [{"ecosystem": eco, "name": pkg} for eco, pkg in self.packages],
                "pitfalls": [p.rules() for p in self.pitfalls]}


_W, _I = Severity.WARNING, Severity.INFO
_NO_PROXY = "export NO_PROXY=localhost,127.0.0.1,::1"

CLIENTS: tuple[ClientFamily, ...] = (
    ClientFamily(
        "ollama-python", "ollama-python", "python", "httpx", reads_ollama_host=True,
        reads_api_key=True, base_path="", default_timeout_s=None, retries=0,
        default_port_rule="http://host → :80, https://host → :443, host → :11434",
        note="Hides the reason for a failed connection behind 'Failed to connect to Ollama'.",
        host_env="OLLAMA_HOST", key_env="OLLAMA_API_KEY",
        packages=(("pypi", "ollama"),),
        pitfalls=(
            # timeout=None in BaseClient.__init__ (0.2.1, 0.6.3).
            Pitfall("ollama-python-no-timeout", "", "server-unresponsive", _W,
                    "ollama-python sets no timeout (httpx timeout=None): a stalled server or "
                    "proxy hangs the call forever.",
                    "Pass a timeout that outlasts a cold load.",
                    ("client = ollama.Client(timeout=120)",),
                    "ollama/_client.py BaseClient.__init__"),
            Pitfall("ollama-python-proxy-env", "", "proxy-captures-local", _W,
                    "ollama-python (httpx, trust_env) sends even http://127.0.0.1:11434 through "
                    "HTTP_PROXY/ALL_PROXY; NO_PROXY=localhost does not cover 127.0.0.1.",
                    "Exclude the Ollama host from proxying, by name and address.",
                    (_NO_PROXY,), "httpx/_utils.py"),
            # ollama/__init__.py: `_client = Client()` at import time (0.2.1, 0.6.3).
            Pitfall("ollama-python-import-proxy", "", "proxy-unsupported", _I,
                    "`import ollama` builds a client at import time: a SOCKS proxy variable "
                    "without socksio, or an unknown proxy scheme, breaks the import itself.",
                    "Install SOCKS support, or unset the variable for the app.",
                    ("pip install 'httpx[socks]'",), "ollama/__init__.py"),
            # _parse_host's doctests: 'http://1.2.3.4' → :80, 'https://1.2.3.4' → :443.
            Pitfall("ollama-python-port-80", "", "wrong-port-scheme", _I,
                    "ollama-python reads OLLAMA_HOST: `http://host` without a port means port "
                    "80, not 11434.",
                    "Write the port in OLLAMA_HOST.", ("export OLLAMA_HOST=http://HOST:11434",),
                    "ollama/_client.py _parse_host"),
            # Client.embed is absent in 0.2.1 and present in 0.3.0.
            Pitfall("ollama-python-legacy-embeddings", "<0.3.0", "ollama-outdated", _W,
                    "ollama-python before 0.3.0 has only `embeddings()`, the legacy "
                    "/api/embeddings endpoint (one prompt per call, no truncate, no batch).",
                    "Upgrade and call `ollama.embed(model=…, input=[…])`.",
                    ("pip install -U 'ollama>=0.3'",), "ollama/_client.py (embed added in 0.3.0)"),
            # BaseClient.__init__ reads OLLAMA_API_KEY in 0.6.0, not in 0.5.4.
            Pitfall("ollama-python-no-api-key", "<0.6.0", "auth-required", _I,
                    "ollama-python before 0.6.0 does not read OLLAMA_API_KEY: a server or proxy "
                    "that needs a bearer token answers 401 although the variable is set.",
                    "Upgrade, or send the header yourself.",
                    ("pip install -U 'ollama>=0.6'",
                     'ollama.Client(headers={"Authorization": f"Bearer {key}"})'),
                    "ollama/_client.py BaseClient.__init__ (OLLAMA_API_KEY read from 0.6.0)"),
        )),
    ClientFamily(
        "openai-python", "openai-python", "python", "httpx", reads_ollama_host=False,
        reads_api_key=False, base_path="/v1", default_timeout_s=600.0, retries=2,
        default_port_rule="the base_url as given (http → 80)",
        note="Needs api_key (any value) and base_url ending in /v1; retries twice.",
        host_env="OPENAI_BASE_URL", key_env="OPENAI_API_KEY",
        packages=(("pypi", "openai"),),
        pitfalls=(
            Pitfall("openai-python-base-url", "", "wrong-base-path", _I,
                    "openai-python does not read OLLAMA_HOST: base_url must be the server plus "
                    "/v1, and api_key must be set (any value; Ollama ignores it).",
                    "Point it at Ollama's OpenAI-compatible path.",
                    ('OpenAI(base_url="http://127.0.0.1:11434/v1", api_key="ollama")',),
                    "openai/_client.py"),
            Pitfall("openai-python-retries", "", "slow-model-load", _I,
                    "openai-python retries twice with a 600 s timeout: a 500 from a failed load "
                    "is tried three times, each one loading the model again.",
                    "Set max_retries=0 while diagnosing, or warm the model at start-up.",
                    ('OpenAI(base_url="http://127.0.0.1:11434/v1", api_key="ollama", '
                     'max_retries=0)',),
                    "openai/_constants.py"),
            Pitfall("openai-python-proxy-env", "", "proxy-captures-local", _I,
                    "openai-python (httpx, trust_env) sends a local base_url through HTTP_PROXY "
                    "too.",
                    "Exclude the Ollama host from proxying.", (_NO_PROXY,), "httpx/_utils.py"),
        )),
    ClientFamily(
        "langchain-ollama", "langchain-ollama", "python", "httpx", reads_ollama_host=True,
        reads_api_key=True, base_path="", default_timeout_s=None, retries=0,
        default_port_rule="as ollama-python (it builds an ollama.Client)",
        host_env="OLLAMA_HOST", key_env="OLLAMA_API_KEY",
        packages=(("pypi", "langchain-ollama"),),
        pitfalls=(
            # It builds an ollama.Client: ollama-python's rules apply.
            Pitfall("langchain-ollama-no-timeout", "", "server-unresponsive", _W,
                    "langchain-ollama uses ollama-python's client: no timeout by default, and "
                    "HTTP_PROXY applies to 127.0.0.1.",
                    "Pass a timeout through client_kwargs, and set NO_PROXY.",
                    ('ChatOllama(model="MODEL", client_kwargs={"timeout": 120})', _NO_PROXY),
                    "langchain_ollama/chat_models.py"),
        )),
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
             "is undici's headersTimeout for a non-streamed answer.",
        packages=(("npm", "ollama"),),
        pitfalls=(
            Pitfall("ollama-js-host", "", "client-parsing-differs", _I,
                    "ollama-js does not read OLLAMA_HOST: it calls http://127.0.0.1:11434 unless "
                    "given a host.",
                    "Pass the host explicitly.",
                    ("new Ollama({ host: process.env.OLLAMA_HOST })",), "src/browser.ts"),
            Pitfall("ollama-js-headers-timeout", "", "slow-model-load", _I,
                    "ollama-js uses Node's fetch (undici): a non-streamed answer that takes more "
                    "than 300 s to start fails with UND_ERR_HEADERS_TIMEOUT; proxy variables are "
                    "ignored unless NODE_USE_ENV_PROXY=1.",
                    "Stream long generations, or warm the model first.", ("stream: true",),
                    "undici headersTimeout"),
        )),
    ClientFamily(
        "openai-node", "openai-node (npm openai)", "node", "node", reads_ollama_host=False,
        reads_api_key=False, base_path="/v1", default_timeout_s=600.0, retries=2,
        default_port_rule="the baseURL as given (http → 80)",
        host_env="OPENAI_BASE_URL", key_env="OPENAI_API_KEY",
        packages=(("npm", "openai"),),
        pitfalls=(
            Pitfall("openai-node-base-url", "", "wrong-base-path", _I,
                    "openai-node needs baseURL ending in /v1 and an apiKey (it throws when "
                    "OPENAI_API_KEY is unset, though Ollama ignores the key).",
                    "Point it at Ollama's OpenAI-compatible path.",
                    ('new OpenAI({ baseURL: "http://127.0.0.1:11434/v1", apiKey: "ollama" })',),
                    "src/index.ts"),
        )),
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
    # llama-index-llms-ollama: llama_index/llms/ollama/base.py class Ollama, read at 0.1.0,
    # 0.3.0 and 0.11.0 (the same defaults in all three).
    ClientFamily(
        "llama-index", "llama-index (llama-index-llms-ollama)", "python",
        "httpx",  # 0.1.x: its own httpx.Client; 0.3.0+: ollama.Client (httpx); trust_env both
        reads_ollama_host=False,  # base_url (default http://localhost:11434) is always passed
        reads_api_key=True,  # 0.3.0+: ollama.Client sends it, with ollama-python 0.6.0 or later
        base_path="",  # POST {base_url}/api/chat
        default_timeout_s=30.0,  # DEFAULT_REQUEST_TIMEOUT = 30.0 (0.1.0, 0.3.0, 0.11.0)
        retries=0,  # Ollama.chat calls the client once (0.11.0)
        default_port_rule="the base_url as given (http → 80); default http://localhost:11434",
        note="Waits 30 s by default (request_timeout): a cold load of a large model takes "
             "longer.",
        key_env="OLLAMA_API_KEY",
        packages=(("pypi", "llama-index-llms-ollama"),),
        pitfalls=(
            Pitfall("llama-index-timeout", "", "slow-model-load", _W,
                    "llama-index's Ollama has request_timeout 30 s by default: a cold load longer "
                    "than that fails with a read timeout, and each retry aborts the load.",
                    "Raise request_timeout above the model's load time, and warm the model.",
                    ('Ollama(model="MODEL", request_timeout=120.0)',),
                    "llama_index/llms/ollama/base.py DEFAULT_REQUEST_TIMEOUT"),
            Pitfall("llama-index-base-url", "", "ipv6-localhost", _I,
                    "llama-index's Ollama defaults to base_url http://localhost:11434 and does "
                    "not read OLLAMA_HOST: `localhost` may resolve to ::1 while Ollama listens on "
                    "127.0.0.1.",
                    "Give the base URL with an address.",
                    ('Ollama(model="MODEL", base_url="http://127.0.0.1:11434")',),
                    "llama_index/llms/ollama/base.py"),
        )),
    # litellm with an ollama/ (POST /api/generate) or ollama_chat/ (POST /api/chat) model, read
    # at 1.61.1, 1.99.4, 1.100.0 and 1.110.2.
    ClientFamily(
        "litellm", "litellm (ollama/ and ollama_chat/ models)", "python",
        "httpx",  # llms/custom_httpx/http_handler.py HTTPHandler: httpx.Client, env proxies
        reads_ollama_host=False,  # main.py completion: api_base or OLLAMA_API_BASE or default
        reads_api_key=True,  # OLLAMA_API_KEY → Authorization: Bearer (main.py 1.61.1;
        # llms/ollama/chat/transformation.py 1.110.2)
        base_path="",  # the api_base is the server; it appends /api/chat or /api/generate
        default_timeout_s=600.0,  # main.py completion: `timeout or request_timeout or 600`
        # (1.61.1); CompletionTimeout.resolve falls back to 600 (1.110.2)
        retries=0,  # litellm/__init__.py num_retries = None: no retry unless num_retries is set
        default_port_rule="the api_base as given (http → 80); default http://localhost:11434",
        note="Reads OLLAMA_API_BASE, not OLLAMA_HOST; the model prefix picks the endpoint.",
        host_env="OLLAMA_API_BASE", key_env="OLLAMA_API_KEY",
        packages=(("pypi", "litellm"),),
        pitfalls=(
            Pitfall("litellm-api-base", "", "client-parsing-differs", _I,
                    "litellm does not read OLLAMA_HOST: it uses api_base (or OLLAMA_API_BASE), "
                    "default http://localhost:11434; use the ollama_chat/ prefix for /api/chat.",
                    "Set the base explicitly.",
                    ('litellm.completion(model="ollama_chat/MODEL", '
                     'api_base="http://127.0.0.1:11434")',),
                    "litellm/llms/ollama"),
            # exception_type: up to 1.99.4 an Ollama error that _map_ollama_exception leaves
            # unmapped falls through to `raise APIConnectionError(f"{exception_provider} -
            # {error_str}")` (BerriAI/litellm#8510, 1.61.1); 1.100.0 first calls
            # _map_exception_by_status (502 → BadGatewayError; BerriAI/litellm#38318). Checked
            # live against a loopback server answering 502 with nginx's HTML page: 1.99.4 raises
            # `APIConnectionError: OllamaException - <html>…` (status_code 500), 1.100.0
            # `BadGatewayError` (502); one request each, no retry.
            Pitfall("litellm-connection-error", "<1.100.0", "bad-gateway", _I,
                    "litellm before 1.100.0 raises an HTTP error it does not map for Ollama, such "
                    "as a proxy's HTML 502 page, as `APIConnectionError: OllamaException - "
                    "<the page>` (status_code 500): the network may be fine.",
                    "Read the status and body inside the message before debugging the "
                    "connection; 1.100.0 and later raise BadGatewayError for a 502. Run the "
                    "doctor against the same base URL.",
                    ("pip install -U 'litellm>=1.100.0'",
                     "ollama-doctor check --host http://127.0.0.1:11434"),
                    "litellm/litellm_core_utils/exception_mapping_utils.py exception_type"),
        )),
    # @langchain/ollama: libs/providers/langchain-ollama/src/chat_models.ts ChatOllama, read at
    # 0.0.1-rc.0 and 1.3.0.
    ClientFamily(
        "langchain-js", "@langchain/ollama (LangChain.js)", "node",
        "node",  # new Ollama({ host, fetch }) from ollama-js: Node's fetch
        reads_ollama_host=False,  # baseUrl, else OLLAMA_BASE_URL (1.1.0+), else 127.0.0.1:11434
        reads_api_key=False,  # ollama-js sends OLLAMA_API_KEY to https://ollama.com only
        base_path="",  # ollama-js calls {host}/api/chat
        default_timeout_s=300.0,  # no timeout of its own: undici's headersTimeout, and Ollama
        # sends no headers before the model has loaded, even when streaming
        retries=0,  # ChatOllama calls this.client.chat directly, not through AsyncCaller
        default_port_rule="as ollama-js: http://host → :80, host → :11434",
        note="Reads OLLAMA_BASE_URL (from 1.1.0), not OLLAMA_HOST; Node's fetch reads no proxy "
             "variable (unless NODE_USE_ENV_PROXY=1).",
        host_env="OLLAMA_BASE_URL",
        packages=(("npm", "@langchain/ollama"),),
        pitfalls=(
            Pitfall("langchain-js-host", "", "client-parsing-differs", _I,
                    "@langchain/ollama uses ollama-js: OLLAMA_HOST is not read and proxy "
                    "variables are ignored by Node's fetch.",
                    "Pass baseUrl explicitly.",
                    ('new ChatOllama({ baseUrl: "http://127.0.0.1:11434" })',),
                    "libs/langchain-ollama"),
            # bd990d5 "feat(ollama): add support for custom baseUrl" (#9607), CHANGELOG 1.1.0.
            Pitfall("langchain-js-base-url-env", ">=1.1.0", "client-parsing-differs", _I,
                    "@langchain/ollama 1.1.0 and later read OLLAMA_BASE_URL when no baseUrl is "
                    "given: the server named in OLLAMA_HOST is not the one it calls.",
                    "Set OLLAMA_BASE_URL to the server the app should call, or pass baseUrl.",
                    ("export OLLAMA_BASE_URL=http://HOST:11434",),
                    "libs/providers/langchain-ollama/src/chat_models.ts ChatOllama constructor"),
        )),
    # ollama-ai-provider (a community provider for the Vercel AI SDK):
    # packages/ollama/src/ollama-provider.ts createOllama, read at 1.2.0.
    ClientFamily(
        "ollama-ai-provider", "ollama-ai-provider (Vercel AI SDK)", "node",
        "node",  # the AI SDK's postJsonToApi with the global fetch (undici)
        reads_ollama_host=False,  # no variable at all: baseURL or http://127.0.0.1:11434/api
        reads_api_key=False,  # sends only the headers it is given
        base_path="/api",  # the baseURL includes /api; it appends /chat and /embed
        default_timeout_s=300.0,  # no timeout of its own: undici's headersTimeout
        retries=2,  # package ai, core/prompt/prepare-retries.ts: maxRetries ?? 2 (2 s, 4 s)
        default_port_rule="the baseURL as given (http → 80); default http://127.0.0.1:11434/api",
        note="The baseURL must end in /api; generateText/streamText retry twice by default.",
        packages=(("npm", "ollama-ai-provider"),),
        pitfalls=(
            Pitfall("ollama-ai-provider-base-url", "", "wrong-base-path", _I,
                    "ollama-ai-provider's baseURL includes /api (default "
                    "http://127.0.0.1:11434/api): a baseURL without /api answers `404 page not "
                    "found`.",
                    "Give the base URL with /api.",
                    ('createOllama({ baseURL: "http://HOST:11434/api" })',),
                    "src/ollama-provider.ts"),
            # provider-utils handle-fetch-error.ts: `fetch failed` (undici's HeadersTimeoutError
            # among its causes) becomes an APICallError with isRetryable: true.
            Pitfall("ollama-ai-provider-retries", "", "slow-model-load", _I,
                    "ollama-ai-provider runs under the AI SDK, whose generateText and "
                    "streamText retry a failed call twice by default (maxRetries 2, after 2 s "
                    "and 4 s), network errors included: a cold load that outlasts undici's 300 s "
                    "headersTimeout is aborted and started again each time.",
                    "Warm the model at start-up, or pass maxRetries: 0 while diagnosing.",
                    ("generateText({ model, prompt, maxRetries: 0 })",),
                    "ai core/prompt/prepare-retries.ts; provider-utils handle-fetch-error.ts"),
        )),
)

BY_NAME: dict[str, ClientFamily] = {c.name: c for c in CLIENTS}
DEFAULT = BY_NAME["ollama-python"]
# The row each package installs: ("pypi", "ollama") → ollama-python, ("npm", "ollama") → …
BY_PACKAGE: dict[tuple[str, str], ClientFamily] = {
    package: c for c in CLIENTS for package in c.packages}

# Aliases a user may type for --client.
ALIASES: dict[str, str] = {
    "ollama": "ollama-python", "python": "ollama-python", "openai": "openai-python",
    "langchain": "langchain-ollama", "node": "ollama-js", "ollama-node": "ollama-js",
    "js": "ollama-js", "go": "ollama-cli", "cli": "ollama-cli",
    "llama-index-llms-ollama": "llama-index", "llamaindex": "llama-index",
    "llama_index": "llama-index", "@langchain/ollama": "langchain-js",
    "langchainjs": "langchain-js",
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
