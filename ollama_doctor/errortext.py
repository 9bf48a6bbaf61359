"""Start from the error you got: a pasted client message → candidate causes and the facts in it.

``PATTERNS`` is the table from failure-modes.md §2 and its "Pasted client errors" table: each
row is a regular expression over the pasted text and the causes it points to, most likely
first. Rows are ordered from specific to generic; the candidates of every matching row are
concatenated in table order, so a specific row (``ECONNREFUSED ::1:``) leads a generic one.

``extract`` pulls out what the message contains: the URL or host and port it dialled, the HTTP
status, the model name, the elapsed time, whether the traceback went through a proxy, and which
client printed it. ``check --error`` uses those facts (the host becomes the target unless
``--host`` is given, the model fills in ``--model``, a timeout's elapsed seconds fill in
``--client-timeout``); ``explain --error`` only reads the text, with no network.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

MAX_TEXT = 256 * 1024


@dataclass(frozen=True)
class Pattern:
    name: str
    regex: re.Pattern[str]
    causes: tuple[str, ...]


def _p(name: str, regex: str, *causes: str) -> Pattern:
    return Pattern(name, re.compile(regex, re.IGNORECASE | re.MULTILINE), causes)


REFUSED = ("server-not-running", "container-localhost", "bound-to-loopback",
           "proxy-unreachable", "wrong-port-scheme", "dns-failure")

PATTERNS: tuple[Pattern, ...] = (
    _p("socks proxy", r"socksio|Unknown scheme for proxy URL", "proxy-unsupported"),
    _p("proxy in the traceback",
       r"http_proxy\.py|Privoxy|squid|ProxyError|proxyconnect|Unable to connect to proxy",
       "proxy-captures-local", "proxy-blocks", "proxy-unreachable"),
    _p("IPv6 localhost refused",
       r"ECONNREFUSED\s+\[?::1\]?:|address:\s*'::1'|\[::1\]:\d+.*refused",
       "ipv6-localhost"),
    _p("bind address dialled",
       r"WinError 10049|//0\.0\.0\.0[:/]|host='0\.0\.0\.0'|\b0\.0\.0\.0:\d+",
       "unspecified-address"),
    _p("name resolution",
       r"Name or service not known|Temporary failure in name resolution|getaddrinfo failed|"
       r"ENOTFOUND|NameResolutionError|nodename nor servname|Errno -[23]\]|Errno 11001|"
       r"no such host|Failed to resolve",
       "dns-failure"),
    _p("TLS to a plain port",
       r"WRONG_VERSION_NUMBER|wrong version number|server gave HTTP response to HTTPS client|"
       r"record layer failure|Mixed Content",
       "wrong-port-scheme"),
    _p("certificate", r"CERTIFICATE_VERIFY_FAILED|certificate verify failed|\bx509\b|"
       r"SSLCertVerificationError|self[- ]signed certificate", "tls-error"),
    _p("connect timeout",
       r"ConnectTimeout|curl: \(28\)|Connection timed out|connect ETIMEDOUT",
       "connect-timeout"),
    _p("connection refused",
       r"Failed to connect to Ollama|Connection refused|ECONNREFUSED|actively refused|"
       r"Errno 111|WinError 10061|Connect call failed|All connection attempts failed|"
       r"could not connect to ollama|Couldn't connect to server|"
       r"Failed to connect to local Ollama|Unable to connect to local Ollama",
       *REFUSED),
    _p("stream cut by a peer",
       r"Server disconnected without sending a response|RemoteDisconnected|"
       r"Remote end closed connection|incomplete chunked read",
       "proxy-captures-local", "runner-crashed"),
    _p("too old", r"unknown model architecture|requires a newer version of Ollama|"
       r"pull model manifest: 412", "ollama-outdated"),
    _p("OOM", r"out of memory|requires more system memory|cudaMalloc failed|"
       r"hipMalloc failed|failed to allocate|signal: killed|insufficient memory|"
       r"not enough memory|model requires .* but only .* are available",
       "out-of-memory", "memory-limit"),
    _p("runner crash",
       r"llama runner process has terminated|llama-server process has terminated|"
       r"model runner has unexpectedly stopped|runner process no longer running",
       "runner-crashed", "out-of-memory"),
    _p("server load timeout", r"timed out waiting for llama", "slow-model-load"),
    _p("read timeout",
       r"ReadTimeout|(?<!connection )timed out|context deadline exceeded|"
       r"UND_ERR_HEADERS_TIMEOUT|HeadersTimeoutError|APITimeoutError|Read timeout",
       "slow-model-load", "high-latency"),
    _p("wrong path", r"404 page not found|/api/api/|/v1/api/|/api/chat/chat/|"
       r"/api/embeddings/api/", "wrong-base-path"),
    _p("model not found", r"model ['\"].*?['\"] not found|model .{1,80} not found, try pulling",
       "model-not-found", "wrong-instance"),
    _p("capability", r"does not support (tools|vision|generate|chat|insert|thinking|"
       r"embedding|completion)", "model-capability"),
    _p("cloud sign-in", r"signin_url|You need to be signed in|not currently signed in",
       "cloud-signin-required"),
    _p("401", r"\(status code: 401\)|Error code: 401|AuthenticationError|\b401\b.{0,40}"
       r"unauthori[sz]ed|unauthori[sz]ed", "auth-required"),
    _p("empty 403", r"^\s*\(status code: 403\)|:\s+\(status code: 403\)|blocked by CORS policy|"
       r"PermissionDeniedError|Error 403: Forbidden|HTTP 403|403 Forbidden|"
       r"failed with status code 403|something went wrong, please see the ollama server logs",
       "origin-forbidden", "host-forbidden"),
    _p("429", r"usage limit|\(status code: 429\)|RateLimitError|429 Too Many Requests|"
       r"Error code: 429|rate limit", "rate-limited"),
    _p("queue full", r"server busy, please try again|maximum pending requests exceeded|"
       r"no slots available", "server-busy"),
    _p("504", r"504 Gateway Time-?out|\(status code: 504\)|Error code: 504|Gateway Timeout",
       "gateway-timeout"),
    _p("502", r"\(status code: 502\)|502 Bad Gateway|Error code: 502|Bad Gateway",
       "bad-gateway", "proxy-captures-local"),
    _p("descriptors", r"too many open files", "fd-limit-low"),
    _p("bad request", r"missing unit in duration|invalid character .* looking for|"
       r"\(status code: 400\)|Error code: 400|cannot unmarshal", "bad-request"),
    _p("method", r"405 method not allowed|\(status code: 405\)", "method-not-allowed"),
    _p("not JSON", r"JSONDecodeError|Expecting value: line 1 column 1|Unexpected token '?<'?",
       "not-ollama"),
    _p("500", r"\(status code: 500\)|500 Internal Server Error|Internal Server Error|"
       r"Error code: 500|status code 500", "server-error", "runner-crashed", "out-of-memory"),
)

CLIENTS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(regex, re.IGNORECASE)) for name, regex in (
        ("ollama-python", r"ollama\._types|ResponseError|Failed to connect to Ollama\. Please"),
        ("openai-python", r"\bopenai\.[A-Z]\w+Error|APIConnectionError|APITimeoutError"),
        ("open-webui", r"^Ollama: \d{3}, message=|Cannot connect to host"),
        ("litellm", r"litellm\.|OllamaException"),
        ("langchain", r"OllamaEndpointNotFoundError|langchain"),
        ("node", r"fetch failed|ECONNREFUSED|UND_ERR_|HeadersTimeoutError|ENOTFOUND"),
        ("requests", r"HTTPConnectionPool|requests\.exceptions|urllib3"),
        ("httpx", r"\bhttpx\.|\bhttpcore\."),
        ("ollama-cli", r"^Error: |could not connect to ollama|ollama server logs"),
        ("go", r"context deadline exceeded|dial tcp"),
        ("browser", r"blocked by CORS policy|Mixed Content"),
        ("curl", r"curl: \(\d+\)"),
    ))

_URL = re.compile(r"(https?)://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)(?::(\d{1,5}))?(/[^\s'\"),]*)?")
_POOL = re.compile(r"host='([^']+)',\s*port=(\d+)")
_HOSTPORT = re.compile(
    r"(?:ECONNREFUSED|ETIMEDOUT|connect to|Connect call failed \(|host)\s*"
    r"\(?'?\[?([0-9A-Za-z_.:-]*?[0-9A-Za-z_.-])\]?'?(?:,\s*|:)(\d{1,5})\b")
_STATUS = (re.compile(r"\(status code: (\d{3})\)"), re.compile(r"Error code: (\d{3})"),
           re.compile(r"status code (\d{3})"), re.compile(r"'(\d{3}) [A-Z][A-Za-z ]+' for url"),
           re.compile(r"\bHTTP[ /](?:1\.1 )?(\d{3})\b"), re.compile(r"^Ollama: (\d{3}),", re.M),
           re.compile(r"Error (\d{3}): "), re.compile(r"\b(\d{3}) (?:Bad Gateway|Gateway Time-?out|"
                                                      r"Forbidden|Unauthorized|Not Found)"))
_MODEL = re.compile(r"model ['\"]([^'\"]{1,200})['\"] not found|"
                    r"library/([A-Za-z0-9._/-]+:[A-Za-z0-9._-]+) does not support")
_ELAPSED = (re.compile(r"after (\d+) ms", re.I),
            re.compile(r"after (\d+(?:\.\d+)?) ?s(?:econds)?\b", re.I),
            re.compile(r"read timeout=(\d+(?:\.\d+)?)", re.I),
            re.compile(r"timed out after (\d+(?:\.\d+)?) ?s", re.I))


@dataclass
class Candidate:
    cause: str
    because: str  # the pattern that matched, and the matched text

    def to_dict(self) -> dict[str, str]:
        return {"cause": self.cause, "because": self.because}


@dataclass
class ErrorAnalysis:
    text: str
    recognised: bool
    candidates: list[Candidate] = field(default_factory=list)
    extracted: dict[str, Any] = field(default_factory=dict)
    client: str | None = None

    @property
    def causes(self) -> list[str]:
        return [c.cause for c in self.candidates]

    def to_dict(self) -> dict[str, Any]:
        from ollama_doctor.redact import redact_text

        excerpt = self.text.strip()
        excerpt = excerpt if len(excerpt) <= 2000 else excerpt[:2000] + "…"
        return {"excerpt": redact_text(excerpt), "recognised": self.recognised,
                "client": self.client, "candidates": [c.to_dict() for c in self.candidates],
                "extracted": self.extracted}


def analyse(text: str) -> ErrorAnalysis:
    """Candidates, most likely first, and the facts the message holds. Pure."""
    text = text[:MAX_TEXT]
    analysis = ErrorAnalysis(text, False)
    seen: set[str] = set()
    for pattern in PATTERNS:
        match = pattern.regex.search(text)
        if not match:
            continue
        snippet = " ".join(match.group(0).split())[:80]
        for cause in _adjust(pattern, text):
            if cause not in seen:
                seen.add(cause)
                analysis.candidates.append(Candidate(cause, f"{pattern.name}: {snippet!r}"))
    analysis.recognised = bool(analysis.candidates)
    analysis.extracted = extract(text)
    analysis.client = next((name for name, rx in CLIENTS if rx.search(text)), None)
    return analysis


def _adjust(pattern: Pattern, text: str) -> tuple[str, ...]:
    """Rows whose order depends on the rest of the message (a 502 on a loopback URL)."""
    if pattern.name == "502" and re.search(r"//(127\.\d+\.\d+\.\d+|localhost|\[::1\])[:/]", text):
        return ("proxy-captures-local", "bad-gateway")
    return pattern.causes


def extract(text: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    url = _URL.search(text)
    if url:
        scheme, host, port, path = url.groups()
        out["url"] = f"{scheme}://{host}" + (f":{port}" if port else "")
        out["host"] = host.strip("[]")
        if port:
            out["port"] = int(port)
        out["scheme"] = scheme
        if path:
            out["path"] = path.rstrip(".")
    else:
        pool = _POOL.search(text) or _HOSTPORT.search(text)
        if pool:
            out["host"], out["port"] = pool.group(1), int(pool.group(2))
    for rx in _STATUS:
        m = rx.search(text)
        if m and 100 <= int(m.group(1)) <= 599:
            out["status"] = int(m.group(1))
            break
    model = _MODEL.search(text)
    if model:
        out["model"] = model.group(1) or model.group(2)
    for i, rx in enumerate(_ELAPSED):
        m = rx.search(text)
        if m:
            value = float(m.group(1))
            out["elapsed_s"] = value / 1000 if i == 0 else value
            break
    if re.search(r"http_proxy\.py|ProxyError|proxyconnect|Privoxy|squid", text, re.I):
        out["through_proxy"] = True
    return out


def target_from(extracted: dict[str, Any]) -> str | None:
    """The server the pasted error was dialling, as an ``OLLAMA_HOST`` value."""
    if "url" in extracted:
        return str(extracted["url"])
    if "host" in extracted and "port" in extracted:
        host = str(extracted["host"])
        host = f"[{host}]" if ":" in host else host
        return f"{host}:{extracted['port']}"
    return None


def hint(cause: str) -> str:
    """How to make the probes reproduce a candidate the run did not confirm."""
    return _HINTS.get(cause, "")


_HINTS = {
    "origin-forbidden": "rerun with --origin set to the Origin your app sends "
                        "(e.g. chrome-extension://<id>)",
    "host-forbidden": "rerun against the URL your client really uses (the proxy or tunnel)",
    "slow-model-load": "rerun with -m MODEL --client-timeout SECONDS (and --cold)",
    "model-not-found": "rerun with -m set to the model name your code sends",
    "model-capability": "rerun with -m MODEL --needs tools (or vision, embedding)",
    "auth-required": "rerun with the headers your client sends (--header 'Authorization: …')",
    "rate-limited": "rerun with --load to measure the limit",
    "server-busy": "rerun with --load --load-call generate -m MODEL",
    "container-localhost": "rerun inside the container, with --discover",
    "runner-crashed": "rerun with -m MODEL and --log-file pointing at the server log",
    "out-of-memory": "rerun with -m MODEL and --log-file pointing at the server log",
}
