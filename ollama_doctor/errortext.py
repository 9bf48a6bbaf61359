"""Start from the error you got: a pasted client message → candidate causes and the facts in it.

Two tables read the text:

- ``ollama_messages.MESSAGES``: Ollama's own words inside the client's exception (``model 'x'
  not found``, ``llama-server process has terminated``, ``server busy``…). They are the most
  specific evidence, so they lead.
- ``PATTERNS``: each client family's own formats (failure-modes §2): ollama-python's
  ``ResponseError``/``ConnectionError``, openai's exception classes, requests' ``NNN Client
  Error: Reason for url:``, httpx/httpcore, curl's exit codes, node's fetch causes, Go's
  ``dial tcp``, and the crashes an app makes when something that is not Ollama answers 200.
  Rows are ordered from specific to generic; the candidates of every matching row are
  concatenated in table order.

Then the HTTP status the text shows adds what that status allows (``STATUS_CAUSES``), read
together with the body the client printed: an HTML page with a 403 or 502 is a proxy or
gateway, an empty 403 is Ollama's Host or Origin check (``_status_causes``).

``extract`` pulls out the facts: the server the client called, the HTTP status, the model, the
client's timeout, whether the call went through a proxy. The target comes **only** from where a
client prints the request URL or address (``for url '…'``, ``HTTPConnectionPool(host=…,
port=…)``, ``connect ECONNREFUSED H:P``, ``Failed to connect to H port P``, Go's ``Post "…"``)
or from the app's source line a traceback shows (``Client(host="…")``, ``base_url="…"``,
``requests.post("…")``): never from a download link, a DTD or documentation link in an HTML
page, a validation library's help link or a proxy's URL.

A bare "Failed to connect to Ollama" (ollama-python raises it ``from None``) cannot tell a
refused port from a name that does not resolve or a wrong scheme: its candidates are ordered by
the host the text shows (a name makes a DNS failure likelier, an IP literal rules it out) and
``explain`` says which live checks decide.

Every expression here is linear in the text (bounded repeats, no nested quantifiers), and a
long paste is read through a window of its start and end (``HEAD`` + ``TAIL``), so a pasted
megabyte costs what 64 KiB does. ``check --error`` uses the facts (the target unless ``--host`` is
given, the model for ``--model``, the timeout for ``--client-timeout``); ``explain --error``
only reads the text, with no network.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ollama_doctor import ollama_messages

MAX_TEXT = 256 * 1024
# What is read of a longer paste: its start (the app's source lines, a page's head) and its
# end (the exception the client raised last). Every row is linear, but a hundred
# case-insensitive alternations cost ~15 µs a byte together: the window bounds one analysis.
HEAD, TAIL = 16 * 1024, 48 * 1024

# A refused connection: something answered the SYN with RST (so the name did resolve).
REFUSED = ("server-not-running", "bound-to-loopback", "container-localhost",
           "proxy-unreachable", "wrong-port-scheme")
# A connection that failed for a reason the client does not print (ollama-python's
# "Failed to connect to Ollama", raised ``from None``; openai's bare "Connection error.").
CANNOT_CONNECT = ("server-not-running", "dns-failure", "proxy-unreachable", "wrong-port-scheme",
                  "bound-to-loopback", "container-localhost", "tls-error")
PROXY_ANSWERED = ("proxy-captures-local", "proxy-blocks", "proxy-unreachable")
NO_ANSWER = ("proxy-captures-local", "proxy-blocks", "not-ollama", "runner-crashed")
STREAM_CUT = ("runner-crashed", "out-of-memory", "proxy-captures-local", "gateway-timeout")
READ_TIMEOUT = ("slow-model-load", "high-latency", "server-unresponsive")

# Ollama's own message → the causes that come with it (a runner crash is often memory).
COMPANIONS: dict[str, tuple[str, ...]] = {
    "runner-crashed": ("out-of-memory",),
    "out-of-memory": ("memory-limit",),
    "model-not-found": ("wrong-instance",),
}


@dataclass(frozen=True)
class Pattern:
    name: str
    regex: re.Pattern[str]
    causes: tuple[str, ...]


def _p(name: str, regex: str, *causes: str) -> Pattern:
    return Pattern(name, re.compile(regex, re.IGNORECASE | re.MULTILINE), causes)


PATTERNS: tuple[Pattern, ...] = (
    _p("socks proxy", r"socksio|Unknown scheme for proxy URL|Missing dependencies for SOCKS",
       "proxy-unsupported"),
    _p("proxy refused the tunnel",
       r"CONNECT tunnel failed|Received HTTP code \d{3} from proxy after CONNECT|"
       r"Proxy CONNECT aborted|Tunnel connection failed|ProxyError: \d{3} ",
       "proxy-blocks", "proxy-captures-local"),
    _p("proxy unreachable",
       r"Unable to connect to proxy|Could not resolve proxy|Failed to connect to proxy|"
       r"curl: \(5\)|proxyconnect tcp", "proxy-unreachable"),
    _p("proxy error page", r"Privoxy|squid|tinyproxy|X-Squid-Error|Proxy Error|proxy server",
       "proxy-captures-local", "proxy-blocks"),
    _p("proxy in the traceback", r"http_proxy\.py|ProxyError", *PROXY_ANSWERED),
    _p("bind address dialled",
       r"WinError 10049|//0\.0\.0\.0[:/]|host='0\.0\.0\.0'|\b0\.0\.0\.0:\d|"
       r"address: '0\.0\.0\.0'", "unspecified-address"),
    _p("name resolution",
       r"Name or service not known|Temporary failure in name resolution|getaddrinfo failed|"
       r"ENOTFOUND|EAI_AGAIN|NameResolutionError|nodename nor servname|Errno -[235]\]|"
       r"Errno 11001|no such host|Failed to resolve|Could not resolve host|"
       r"Resolving timed out|No address associated with hostname|server misbehaving",
       "dns-failure"),
    _p("TLS to a plain port",
       r"WRONG_VERSION_NUMBER|wrong version number|server gave HTTP response to HTTPS client|"
       r"record layer failure|packet length too long|ssl3_get_record|Mixed Content|"
       r"plain HTTP request was sent to HTTPS port|http: server gave HTTP response",
       "wrong-port-scheme"),
    _p("certificate",
       r"CERTIFICATE_VERIFY_FAILED|certificate verify failed|\bx509\b|SSLCertVerificationError|"
       r"self[- ]signed certificate|UNABLE_TO_VERIFY_LEAF_SIGNATURE|CERT_HAS_EXPIRED|"
       r"ERR_TLS_CERT_ALTNAME_INVALID|curl: \(60\)", "tls-error"),
    _p("connect timeout",
       r"ConnectTimeout|connect ETIMEDOUT|UND_ERR_CONNECT_TIMEOUT|Connect Timeout Error|"
       r"curl: \(28\) (?:Failed to connect|Connection timed out)|Errno 110\]|"
       r"Connection to \S{1,255} timed out|dial tcp \S{1,300} i/o timeout|"
       r"(?<!read )Connection timed out", "connect-timeout"),
    _p("connection refused",
       r"Connection refused|ECONNREFUSED|actively refused|Errno 111\]|WinError 10061|"
       r"Connect call failed|All connection attempts failed|Could(?:n't| not) connect to server|"
       r"curl: \(7\)", *REFUSED),
    _p("no answer",
       r"Server disconnected without sending a response|RemoteDisconnected|"
       r"Remote end closed connection|Empty reply from server|curl: \(52\)|"
       r"Connection reset by peer|ECONNRESET|Errno 104\]|Recv failure|UND_ERR_SOCKET|"
       r"other side closed|Connection aborted|Connection broken|httpx2?\.ReadError|"
       r"httpcore2?\.ReadError",
       *NO_ANSWER),
    _p("stream cut",
       r"incomplete chunked read|peer closed connection without sending complete|"
       r"Did not receive done or success response|Expected a completed response|"
       r"TypeError: terminated", *STREAM_CUT),
    _p("cannot connect",
       r"Failed to connect to Ollama|could not connect to ollama|Failed to connect to local "
       r"Ollama|Unable to connect to local Ollama|APIConnectionError|Connection error\.|"
       r"fetch failed", *CANNOT_CONNECT),
    _p("read timeout",
       r"ReadTimeout|Read timed out|(?<!connection )timed out|context deadline exceeded|"
       r"UND_ERR_HEADERS_TIMEOUT|HeadersTimeoutError|UND_ERR_BODY_TIMEOUT|APITimeoutError|"
       r"APIConnectionTimeoutError|Request timed out|TimeoutError|operation was aborted|"
       r"AbortError|Operation timed out|curl: \(28\)", *READ_TIMEOUT),
    _p("the call hangs", r"still waiting after|\bhangs\b|\bhanging\b|never (?:returns|answers)",
       "connect-timeout", "server-unresponsive", "slow-model-load"),
    _p("doubled path", r"/api/api/|/v1/api/|/api/v1/|/v1/v1/|/api/chat/chat|/api/embeddings/api/",
       "wrong-base-path"),
    _p("CORS", r"blocked by CORS policy", "origin-forbidden", "host-forbidden"),
    _p("empty-body error (ollama CLI)",
       r"something went wrong, please see the ollama server logs", "host-forbidden",
       "origin-forbidden"),
    _p("401", r"AuthenticationError|\b401\b.{0,40}unauthori[sz]ed|\bunauthori[sz]ed\b",
       "auth-required"),
    _p("429", r"RateLimitError|Too Many Requests|rate.?limit", "rate-limited"),
    _p("not JSON",
       r"JSONDecodeError|Expecting value: line 1 column 1|Unexpected token|is not valid JSON|"
       r"invalid json response body|Unexpected end of JSON input", "not-ollama"),
    # the app read a streamed line without the answer in it: an {"error": …} line mid-stream
    _p("a stream line without the answer",
       r"json\.loads\((?:line|chunk|raw)\)\[['\"](?:message|response)['\"]\]",
       "runner-crashed", "out-of-memory", "not-ollama"),
    _p("not Ollama's answer",
       r"KeyError: '(?:response|message|choices|content|model|done)'|"
       r"has no attribute '(?:choices|message|response|content)'|Field required|"
       r"validation errors? for \w{1,60}Response|Cannot read properties of (?:undefined|null)|"
       r"'NoneType' object is not subscriptable|is not iterable", "not-ollama"),
    # a raw body the client printed as the whole answer (curl): not Ollama's JSON
    _p("a body that is not Ollama's",
       r"(?:\A|^\$ curl [^\n]{0,4000}\n)\s{0,20}(?:<!DOCTYPE html|<html|<\?xml)|"
       r"(?:\A|^\$ curl [^\n]{0,4000}\n)\s{0,20}\{"
       r"(?![^\n]{0,2000}\"(?:model|message|response|error)\")",
       "not-ollama"),
)

# Rows that only say a call failed: they count when nothing more specific matched (node's
# "fetch failed" carries its real cause; openai's "Connection error." chains the httpx one).
FALLBACKS = frozenset({"cannot connect"})

# What an HTTP status allows, when the text shows one (``_status_causes`` reads the body too).
STATUS_CAUSES: dict[int, tuple[str, ...]] = {
    400: ("bad-request", "model-capability"),
    401: ("auth-required", "cloud-signin-required"),
    403: ("host-forbidden", "origin-forbidden", "proxy-blocks", "forbidden"),
    404: ("model-not-found", "wrong-base-path", "wrong-instance"),
    405: ("method-not-allowed", "wrong-base-path"),
    408: ("gateway-timeout", "slow-model-load"),
    429: ("rate-limited",),
    500: ("server-error", "runner-crashed", "out-of-memory"),
    502: ("bad-gateway", "proxy-captures-local"),
    503: ("server-busy", "bad-gateway"),
    504: ("gateway-timeout", "slow-model-load"),
}

# openai's exception classes name the status when the message does not (python and node).
OPENAI_CLASSES: dict[str, int] = {
    "BadRequestError": 400, "AuthenticationError": 401, "PermissionDeniedError": 403,
    "NotFoundError": 404, "ConflictError": 409, "UnprocessableEntityError": 422,
    "RateLimitError": 429, "InternalServerError": 500,
}

# -- where a client prints the server it called ------------------------------------------------

_HOST = r"\[[0-9A-Fa-f:.]{2,64}\]|[A-Za-z0-9_.-]{1,253}"
_URL_RX = (r"(https?)://(?:[^\s/@'\"<>]{1,256}@)?(" + _HOST + r")(?::(\d{1,5}))?"
           r"(/[^\s'\"<>),]{0,500})?")
_URL = re.compile(_URL_RX, re.IGNORECASE)

# The request URL as the client prints it.
_REQUEST_URL = tuple(re.compile(rx.replace("<U>", _URL_RX), re.IGNORECASE) for rx in (
    r"\bfor url:? '?<U>",  # httpx "for url '…'", requests "for url: …"
    r"with url: <U>",  # requests through a proxy: the absolute URL it asked the proxy for
    r"\burl=(?:URL\()?['\"]<U>",  # aiohttp / Open WebUI
    r"\b(?:Get|Post|Head|Put|Delete|Patch) \"<U>\"",  # Go net/http
    r"Access to fetch at '<U>'", r"insecure resource '<U>'",  # browsers
))
# The app's own source line, as a traceback shows it.
_SOURCE = tuple(re.compile(rx, re.IGNORECASE | re.MULTILINE) for rx in (
    r"\b(?:requests|httpx|session|client|aiohttp|urllib\.request)\.(?:get|post|put|stream|"
    r"request|urlopen)\(\s{0,3}(?:['\"](?:GET|POST|PUT)['\"],\s{0,3})?['\"](" + _URL_RX + ")",
    r"\bfetch\(\s{0,3}['\"`](" + _URL_RX + ")",
    r"^[$+]?\s{0,3}curl\s[^\n]{0,400}?['\"]?(" + _URL_RX + ")",
    # keyword arguments and options, but not urllib3's own "Pool(host='…', port=…)"
    r"(?<![\w.])(?<!Pool\()(?<!Connection\()(?:host|base_url|baseURL|base_uri|api_base|"
    r"endpoint)\s{0,3}[=:]\s{0,3}['\"`]([^'\"`\s]{1,300})['\"`]",
    r"\b(?:OLLAMA_HOST|OPENAI_BASE_URL)\s{0,3}=\s{0,3}['\"]?([^'\"\s]{1,300})",
))
# The address the client dialled (host, port).
_ADDRESS = tuple(re.compile(rx, re.IGNORECASE) for rx in (
    r"HTTPS?Connection(?:Pool)?\(host='([^'\s]{1,253})', port=(\d{1,5})\)",
    r"connect (?:ECONNREFUSED|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH) \[?([0-9A-Fa-f:.]{2,64}?)\]?"
    r":(\d{1,5})\b",
    r"address: '([^'\s]{1,64})',\s{0,20}port: (\d{1,5})",
    r"Failed to connect to (\S{1,253}) port (\d{1,5})",
    r"Cannot connect to host (\S{1,253}):(\d{1,5})",
    r"attempted address: \[?([0-9A-Za-z_.:-]{1,253}?)\]?:(\d{1,5})\b",  # undici
    r"dial tcp \[?([0-9A-Za-z_.:-]{1,253}?)\]?:(\d{1,5}):",
))
# A name that did not resolve (no port printed).
_HOST_ONLY = tuple(re.compile(rx, re.IGNORECASE) for rx in (
    r"getaddrinfo (?:ENOTFOUND|EAI_AGAIN) ([A-Za-z0-9_.-]{1,253})",
    r"Could not resolve host: ([A-Za-z0-9_.-]{1,253})",
    r"Failed to resolve '([^'\s]{1,253})'",
    r"lookup ([A-Za-z0-9_.-]{1,253}) on ",
    r"hostname: '([^'\s]{1,253})'",
    r"Connection to ([A-Za-z0-9_.-]{1,253}) timed out",
))

_STATUS = tuple(re.compile(rx, re.IGNORECASE | re.MULTILINE) for rx in (
    r"\(status code: (\d{3})\)",  # ollama-python ResponseError
    r"\bstatus_code: (\d{3})\b",  # ollama-js ResponseError, as node prints it
    r"Error code: (\d{3})",  # openai-python
    r"\b(\d{3}) (?:Client|Server) Error: ",  # requests
    r"(?:Client|Server) error '(\d{3}) ",  # httpx
    r"returned error: (\d{3})",  # curl 22
    r"^[\w.]{0,60}Error: (\d{3}) ",  # openai-node "NotFoundError: 404 …", requests
    r"^Ollama: (\d{3}),",  # Open WebUI
    r"\bError (\d{3}): ",  # ollama-js fallback
    r"^Error: (\d{3}) ",  # the ollama CLI
    r"status code (\d{3})",
    r"\bHTTP[ /](?:1\.[01] |2 )?(\d{3})\b",
    r"<title>(\d{3}) ",
))
_PROXY_STATUS = re.compile(r"CONNECT tunnel failed, response (\d{3})|Received HTTP code (\d{3}) "
                           r"from proxy|ProxyError: (\d{3}) |Tunnel connection failed: (\d{3})",
                           re.IGNORECASE)
# The status line's reason phrase, where a client prints it. Ollama (Go's net/http) always
# writes http.StatusText(code); another phrase means something in between wrote the answer:
# tinyproxy's "500 Unable to connect", nginx's "504 Gateway Time-out".
_REASON = tuple(re.compile(rx) for rx in (
    r"(?:Client|Server) error '(\d{3}) ([^'\n]{1,80})' for url",  # httpx
    r"\b(\d{3}) (?:Client|Server) Error: ([^\n]{1,80}?) for url",  # requests
))
_OPENAI_CLASS = re.compile(r"\b(" + "|".join(OPENAI_CLASSES) + r")\b")
_HTML = re.compile(r"<html|<!DOCTYPE html|<head>|<body|<title>", re.IGNORECASE)
_EMPTY_BODY = re.compile(
    r"(?:ResponseError|^):?\s{0,5}\(status code: \d{3}\)|"  # ollama-python, nothing before
    r"status code \(no body\)|"  # openai-node
    r"\bError \d{3}: [A-Z][a-z]{2,30}(?: [A-Z][a-z]{2,30})?\s*$|"  # ollama-js fallback
    r"returned error: \d{3}\s*\Z|"  # curl --fail-with-body, and no body after it
    r"something went wrong, please see the ollama server logs",  # the ollama CLI
    re.MULTILINE)
# openai-python prints the body's error message when it is JSON, and nothing after the status
# otherwise (an HTML page, gin's "404 page not found", an empty body): never Ollama's JSON error
_NO_JSON_BODY = re.compile(r"Error code: \d{3}[ \t]*$", re.MULTILINE)
_MODEL_MSG = re.compile(r"model ['\"]([^'\"\s]{1,200})['\"] not found|"
                        r"library/([A-Za-z0-9._/-]{1,200}:[A-Za-z0-9._-]{1,100}) does not support")
_MODEL_SRC = re.compile(r"""\bmodel['"]?\s{0,3}[=:]\s{0,3}['"`]([^'"`\s]{1,200})['"`]""")
_ELAPSED = (re.compile(r"after (\d{1,9}) ms", re.I),
            re.compile(r"after (\d{1,9}) milliseconds", re.I),
            re.compile(r"after (\d{1,9}(?:\.\d{1,6})?) ?s(?:econds)?\b", re.I),
            re.compile(r"read timeout=(\d{1,9}(?:\.\d{1,6})?)", re.I),
            re.compile(r"timed out after (\d{1,9}(?:\.\d{1,6})?) ?s", re.I))
_TIMEOUT_SRC = (
    (re.compile(r"\btimeout\s{0,3}=\s{0,3}(\d{1,9}(?:\.\d{1,6})?)\b"), 1.0),  # Python keyword
    (re.compile(r"['\"]timeout['\"]\s{0,3}:\s{0,3}(\d{1,9}(?:\.\d{1,6})?)\b"), 1.0),  # dict
    (re.compile(r"\btimeout\s{0,3}:\s{0,3}(\d{1,9})\b"), 0.001),  # JS options: milliseconds
    (re.compile(r"AbortSignal\.timeout\((\d{1,9})\)"), 0.001),
    (re.compile(r"\bcurl\b[^\n]{0,300}?\s-(?:m|-max-time) (\d{1,9}(?:\.\d{1,6})?)\b"), 1.0),
)
_THROUGH_PROXY = re.compile(r"http_proxy\.py|ProxyError|proxyconnect|Privoxy|squid|tinyproxy|"
                            r"CONNECT tunnel|from proxy after CONNECT|Tunnel connection failed|"
                            r"with url: https?://", re.IGNORECASE)
_LOOPBACK = ("localhost", "127.0.0.1", "::1", "0.0.0.0")
# Ports only proxies listen on (squid, privoxy, SOCKS, Tor): a client that printed only the
# address it dialled (curl) dialled its proxy, which never becomes the server to probe.
PROXY_PORTS = frozenset({3128, 8118, 1080, 9050})


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
    lead_size: int = 0  # how many causes the leading evidence allows (1 = it names one)

    @property
    def causes(self) -> list[str]:
        return [c.cause for c in self.candidates]

    @property
    def confidence(self) -> str:
        """How sure the text alone is of its first candidate: high / medium / low."""
        if not self.candidates:
            return "low"
        if self.lead_size <= 1:
            return "high"
        return "medium" if self.lead_size <= 3 else "low"

    def to_dict(self) -> dict[str, Any]:
        from ollama_doctor.redact import redact_text

        excerpt = self.text.strip()
        excerpt = excerpt if len(excerpt) <= 2000 else excerpt[:2000] + "…"
        return {"excerpt": redact_text(excerpt), "recognised": self.recognised,
                "client": self.client, "candidates": [c.to_dict() for c in self.candidates],
                "confidence": self.confidence, "extracted": self.extracted}


def analyse(text: str) -> ErrorAnalysis:
    """Candidates, most likely first, and the facts the message holds. Pure."""
    from ollama_doctor.clients import detect

    text = text[:MAX_TEXT]
    analysis = ErrorAnalysis(text, False)
    if len(text) > HEAD + TAIL:
        text = text[:HEAD] + "\n…\n" + text[-TAIL:]
    analysis.extracted = extract(text)
    analysis.client = detect(text)
    groups: list[tuple[str, tuple[str, ...]]] = []  # (why, causes), strongest evidence first
    for row in ollama_messages.matches(text):
        m = row.pattern.search(text)
        snippet = _snippet(m.group(0) if m else row.id)
        groups.append((f"Ollama's message ({row.id}): {snippet}",
                       (row.cause, *COMPANIONS.get(row.cause, ()))))
    fallbacks: list[tuple[str, tuple[str, ...]]] = []
    for pattern in PATTERNS:
        match = pattern.regex.search(text)
        if match:
            group = (f"{pattern.name}: {_snippet(match.group(0))}",
                     _adjust(pattern, text, analysis.extracted, analysis.client))
            (fallbacks if pattern.name in FALLBACKS else groups).append(group)
    if not groups:  # only a row that says the call failed: its candidates, nothing better
        groups.extend(fallbacks)
    status = analysis.extracted.get("status")
    if isinstance(status, int):
        causes = _status_causes(status, text, analysis.extracted, analysis.client)
        if causes:
            groups.append((f"HTTP {status}" + _body_note(analysis.extracted), causes))
    seen: set[str] = set()
    for why, causes in groups:
        for cause in causes:
            if cause not in seen:
                seen.add(cause)
                analysis.candidates.append(Candidate(cause, why))
    analysis.recognised = bool(analysis.candidates)
    analysis.lead_size = len(groups[0][1]) if groups else 0
    return analysis


def _snippet(text: str) -> str:
    return repr(" ".join(text.split())[:80])


def _body_note(extracted: dict[str, Any]) -> str:
    if extracted.get("html"):
        return " with an HTML page"
    if extracted.get("empty_body"):
        return " with an empty body"
    return ""


def _loopback(extracted: dict[str, Any]) -> bool | None:
    """Whether the client called a loopback address; ``None`` when the text does not say."""
    host = extracted.get("host")
    if not host:
        return None
    return str(host).lower() in _LOOPBACK or str(host).startswith("127.")


def _cloud_model(extracted: dict[str, Any]) -> bool:
    """A ``:cloud`` / ``-cloud`` tag: Ollama relays the call to ollama.com
    (server/cloud_proxy.go)."""
    return bool(re.search(r"[:-]cloud\b", str(extracted.get("model") or "")))


def _host_allowed(host: str) -> bool:
    """Whether Ollama's Host check (server/routes.go allowedHostsMiddleware, v0.1.29+) lets a
    ``Host`` header naming ``host`` through: localhost, ``.localhost``/``.local``/``.internal``
    names, loopback, private and unspecified addresses. (The machine's own name and interface
    addresses pass too; the text cannot tell those.)"""
    import ipaddress

    name = host.lower().strip("[]")
    if name == "localhost" or name.endswith((".localhost", ".local", ".internal")):
        return True
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        return False
    return ip.is_loopback or ip.is_private or ip.is_unspecified


def _is_ip(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _adjust(pattern: Pattern, text: str, extracted: dict[str, Any],
            client: str | None) -> tuple[str, ...]:
    """Rows whose order depends on the rest of the message."""
    causes = pattern.causes
    host = str(extracted.get("host") or "")
    if pattern.name == "connection refused":
        if re.search(r"ECONNREFUSED\s{1,3}\[?::1\]?:|address: '::1'", text) and not re.search(
                r"ECONNREFUSED\s{1,3}127\.|address: '127\.", text):
            return ("ipv6-localhost", *causes)  # only the IPv6 loopback refused
        return _order_connect(causes, text, extracted)
    if pattern.name == "cannot connect":
        return _order_connect(causes, text, extracted)
    if pattern.name in ("no answer", "stream cut") and extracted.get("through_proxy"):
        return ("proxy-captures-local", "proxy-blocks", *causes)
    if pattern.name == "proxy error page" and _loopback(extracted) is False:
        return ("proxy-blocks", "proxy-captures-local")
    if pattern.name == "proxy in the traceback" and re.search(
            r"Connection refused|Errno 111\]|ConnectError", text):
        return ("proxy-unreachable", "proxy-captures-local", "proxy-blocks")
    if pattern.name == "401" and _cloud_model(extracted):
        return ("cloud-signin-required", "auth-required")
    if pattern.name == "a body that is not Ollama's" and extracted.get("status"):
        return ()  # an error page with a status: the status decides
    if pattern.name == "empty-body error (ollama CLI)" and client == "browser":
        return ("origin-forbidden", "host-forbidden")
    del host
    return causes


def _order_connect(causes: tuple[str, ...], text: str,
                   extracted: dict[str, Any]) -> tuple[str, ...]:
    """Order a failed connection's candidates by the host the text shows: a name makes a
    DNS failure likelier, an IP literal rules it out; https to Ollama's plain port or a port
    the scheme defaults to (80/443) makes the wrong port or scheme likeliest."""
    out = list(causes)
    host = str(extracted.get("host") or "")
    port = extracted.get("port")
    scheme = extracted.get("scheme")
    if host and _is_ip(host) and "dns-failure" in out:
        out.remove("dns-failure")
    elif host and host.lower() not in _LOOPBACK and "dns-failure" in out:
        out.remove("dns-failure")
        out.insert(0, "dns-failure")
    if (scheme == "https" and port == 11434) or port in (80, 443):
        if "wrong-port-scheme" in out:
            out.remove("wrong-port-scheme")
        out.insert(0, "wrong-port-scheme")
    if host == "host.docker.internal" and "bound-to-loopback" in out:
        out.remove("bound-to-loopback")
        out.insert(0, "bound-to-loopback")
    if extracted.get("through_proxy") and "proxy-unreachable" in out:
        out.remove("proxy-unreachable")
        out.insert(0, "proxy-unreachable")
    del text
    return tuple(out)


def _status_causes(status: int, text: str, extracted: dict[str, Any],
                   client: str | None) -> tuple[str, ...]:
    if extracted.get("proxy_status") == status:
        return ("proxy-blocks", "proxy-captures-local") if status == 403 else (
            "proxy-captures-local", "proxy-blocks")
    if status == 403:
        return _forbidden_causes(extracted, client)
    if extracted.get("foreign_reason") and status >= 500 and _loopback(extracted):
        # a local target answered by something other than Ollama: a proxy on the client's path
        return ("proxy-captures-local", "bad-gateway", *STATUS_CAUSES.get(status, ()))
    if status == 502:
        if _loopback(extracted):  # Ollama answers 502 only for cloud models (server/cloud_proxy.go)
            return ("proxy-captures-local", "bad-gateway")
        return STATUS_CAUSES[502]
    if status == 404:
        return _not_found_causes(extracted)
    if status == 401 and _cloud_model(extracted):
        return ("cloud-signin-required", "auth-required")
    if status in STATUS_CAUSES:
        return STATUS_CAUSES[status]
    if 400 <= status < 500:
        return ("bad-request",)
    if status >= 500:
        return ("server-error",)
    del text
    return ()


def _forbidden_causes(extracted: dict[str, Any], client: str | None) -> tuple[str, ...]:
    """A 403 the client printed: Ollama's Host or Origin check, or something in between."""
    loop = _loopback(extracted)
    if extracted.get("html"):  # a page is a proxy's or gateway's: Ollama's own 403s are empty
        return (("proxy-blocks", "proxy-captures-local") if loop is False
                else ("proxy-captures-local", "proxy-blocks"))
    if client == "browser":
        return ("origin-forbidden", "host-forbidden", "proxy-blocks", "forbidden")
    host = str(extracted.get("host") or "")
    if host and _host_allowed(host):
        # Ollama's Host check lets this name through, and only browsers send an Origin:
        # the 403 is something in between (server/routes.go allowedHostsMiddleware)
        first = ("proxy-captures-local", "proxy-blocks") if loop else (
            "proxy-blocks", "proxy-captures-local")
        return (*first, "origin-forbidden", "forbidden")
    if host:
        return ("host-forbidden", "proxy-blocks", "origin-forbidden", "forbidden")
    if extracted.get("empty_body"):  # Ollama's own 403s are empty (AbortWithStatus)
        return ("host-forbidden", "origin-forbidden", "proxy-captures-local",
                "proxy-blocks", "forbidden")
    return ("host-forbidden", "proxy-captures-local", "proxy-blocks", "origin-forbidden",
            "forbidden")


def _not_found_causes(extracted: dict[str, Any]) -> tuple[str, ...]:
    path = str(extracted.get("path") or "")
    if extracted.get("empty_body") or extracted.get("non_json_body") or re.search(
            r"/api/api/|/v1/api/|/v1/v1/", path):
        # Ollama's missing model is always a JSON error: without one it is the path
        return ("wrong-base-path", "model-not-found", "wrong-instance")
    return STATUS_CAUSES[404]


# -- facts ----------------------------------------------------------------------------------


def _url_parts(m: re.Match[str], offset: int = 1) -> dict[str, Any]:
    scheme, host, port, path = (m.group(offset), m.group(offset + 1), m.group(offset + 2),
                                m.group(offset + 3))
    scheme = scheme.lower()
    host = host.strip("[]")
    number = int(port) if port else (443 if scheme == "https" else 80)
    shown = f"[{host}]" if ":" in host else host
    out: dict[str, Any] = {"url": f"{scheme}://{shown}:{number}", "host": host, "port": number,
                           "scheme": scheme}
    if path and path.rstrip(".") not in ("", "/"):
        out["path"] = path.rstrip(".")
    return out


def _dialled(text: str) -> dict[str, Any] | None:
    """The address the client printed it dialled (host, port), if any."""
    for rx in _ADDRESS:
        m = rx.search(text)
        if m:
            return {"host": m.group(1).strip("[]"), "port": int(m.group(2)),
                    "target_from": "address"}
    return None


def _target(text: str) -> dict[str, Any]:
    for rx in _REQUEST_URL:
        m = rx.search(text)
        if m:
            return {**_url_parts(m), "target_from": "request-url"}
    for rx in _SOURCE:
        m = rx.search(text)
        if m:
            value = m.group(1)
            url = _URL.fullmatch(value.rstrip("/")) or _URL.match(value)
            if url:
                return {**_url_parts(url), "target_from": "source-line"}
            hostport = re.fullmatch(r"\[?([0-9A-Za-z_.:-]{1,253}?)\]?(?::(\d{1,5}))?/?", value)
            if hostport:  # OLLAMA_HOST rules: a bare host means port 11434
                return {"host": hostport.group(1),
                        "port": int(hostport.group(2) or 11434), "target_from": "source-line"}
    dialled = _dialled(text)
    if dialled is not None:
        if dialled["port"] in PROXY_PORTS:  # the client's proxy, not its server
            return {"proxy_port": dialled["port"]}
        return dialled
    for rx in _HOST_ONLY:
        m = rx.search(text)
        if m:
            return {"host": m.group(1), "target_from": "address"}
    return {}


def extract(text: str) -> dict[str, Any]:
    out: dict[str, Any] = _target(text)
    if out.get("target_from") in ("request-url", "source-line"):
        dialled = _dialled(text)
        if dialled is not None and dialled["port"] != out.get("port"):
            # the client dialled another port than its URL's: its proxy's (curl prints the
            # address it connected to, which is the proxy when one is used)
            out["proxy_port"] = dialled["port"]
    out.update(_status_facts(text))
    model = _MODEL_MSG.search(text)
    if model:
        out["model"] = model.group(1) or model.group(2)
    else:
        source = _MODEL_SRC.search(text)
        if source:
            out["model"] = source.group(1)
    out.update(_timing_facts(text))
    if _THROUGH_PROXY.search(text) or "proxy_port" in out:
        out["through_proxy"] = True
    return out


def _status_facts(text: str) -> dict[str, Any]:
    """The HTTP status shown (the proxy's own, if a proxy answered), and what its body was."""
    out: dict[str, Any] = {}
    status = _first_status(text)
    proxy = _PROXY_STATUS.search(text)
    if proxy:
        out["proxy_status"] = int(next(g for g in proxy.groups() if g))
        status = status or out["proxy_status"]
    if status is None:
        return out
    out["status"] = status
    reason = _foreign_reason(text, status)
    if reason is not None:
        out["foreign_reason"] = reason
    if _HTML.search(text):
        out["html"] = True
    elif _EMPTY_BODY.search(text):
        out["empty_body"] = True
    elif _NO_JSON_BODY.search(text):
        out["non_json_body"] = True
    return out


def _timing_facts(text: str) -> dict[str, Any]:
    """The client's own timeout and how long the call ran, when the text says."""
    out: dict[str, Any] = {}
    for rx, scale in _TIMEOUT_SRC:
        m = rx.search(text)
        if m:
            out["client_timeout"] = round(float(m.group(1)) * scale, 3)
            break
    for i, rx in enumerate(_ELAPSED):
        m = rx.search(text)
        if m:
            value = float(m.group(1))
            out["elapsed_s"] = value / 1000 if i < 2 else value
            break
    if "elapsed_s" not in out and "client_timeout" in out and re.search(
            r"timed? ?out|Timeout|aborted", text, re.IGNORECASE):
        out["elapsed_s"] = out["client_timeout"]  # the call ran until its own timeout
    return out


def _foreign_reason(text: str, status: int) -> str | None:
    """The reason phrase the client printed for ``status`` when it is not the one Go's net/http
    writes (``http.StatusText``, which Python's ``HTTPStatus`` phrases match): the answer
    came from something in between, not from Ollama."""
    from http import HTTPStatus

    for rx in _REASON:
        m = rx.search(text)
        if m and int(m.group(1)) == status:
            try:
                standard = HTTPStatus(status).phrase
            except ValueError:
                return None
            reason = m.group(2).strip()
            return reason if reason.lower() != standard.lower() else None
    return None


def _first_status(text: str) -> int | None:
    for rx in _STATUS:
        m = rx.search(text)
        if m and 100 <= int(m.group(1)) <= 599:
            return int(m.group(1))
    m = _OPENAI_CLASS.search(text)
    if m:
        return OPENAI_CLASSES[m.group(1)]
    return None


def target_from(extracted: dict[str, Any]) -> str | None:
    """The server the pasted error was dialling, as an ``OLLAMA_HOST`` value."""
    if "url" in extracted:
        return str(extracted["url"])
    if "host" in extracted:
        host = str(extracted["host"])
        host = f"[{host}]" if ":" in host else host
        return f"{host}:{extracted['port']}" if "port" in extracted else host
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
    "rate-limited": "rerun with --load to measure the limit (or -m the cloud model your code "
                    "calls)",
    "server-busy": "rerun with --load --load-call generate -m MODEL",
    "container-localhost": "rerun inside the container, with --discover",
    "runner-crashed": "rerun with -m MODEL and --log-file pointing at the server log",
    "out-of-memory": "rerun with -m MODEL and --log-file pointing at the server log",
    "cloud-signin-required": "rerun with -m the cloud model your code calls",
    "proxy-captures-local": "rerun in the shell your app runs in, with its proxy variables",
    "proxy-unreachable": "rerun in the shell your app runs in, with its proxy variables",
    "server-not-running": "rerun where your app runs, with --host set to the URL it uses",
    "dns-failure": "rerun where your app runs, with --host set to the URL it uses",
}
