"""The injected outside world: options, environment, clock, filesystem root, resolver, HTTP.

Probes never read ``os.environ`` or make an HTTP request directly: the environment is
``env``, files (``/proc``, ``/sys``, ``/etc``) are read under ``fs_root`` through ``path``, and
every HTTP request goes through ``http``, ``http_client`` or ``async_client`` below, so tests
swap any of these (a fixture ``/proc`` tree, an environment without the developer's proxy
variables). Three things are read from the live machine on purpose, because no file holds them
portably: process and socket tables through psutil in ``local.py`` (used by ``server``,
``models``, ``dns``, ``reachability``, ``resources`` and ``ulimit``), memory and disk figures
through psutil in ``resources`` where ``/proc/meminfo`` is absent (macOS, Windows), and a
process's open-file count through psutil in ``ulimit``; tests replace those psutil functions, and
raw TCP/TLS/DNS exchanges go through ``net.py``, ``tlsinfo.py`` and dnspython with the context's
timeouts. Other probes' results are read through ``result`` (status, findings) and ``facts`` (typed
evidence, ``facts.py``).

The client's path is decided here, once: ``route(url)`` is the proxy the chosen client family
(``--client``, ``clients.py``) uses for a URL under this environment (``proxyenv``), or direct.
``http``, ``http_client`` and ``async_client`` send every probe's request along that path —
through the proxy in absolute form for ``http://`` and by ``CONNECT`` for ``https://``, as the
client does — unless a probe asks for the direct path to compare (``direct=True``).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ollama_doctor.target import Target

if TYPE_CHECKING:
    import httpx

    from ollama_doctor.clients import ClientFamily
    from ollama_doctor.errortext import ErrorAnalysis
    from ollama_doctor.net import HttpReply, Resolution
    from ollama_doctor.result import Outcome, ProbeResult


@dataclass(frozen=True)
class Options:
    """Every option a probe may read. ``check`` and ``probe`` share them."""

    timeout: float = 5.0
    client_timeout: float | None = None
    load_timeout: float = 300.0
    model: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    origin: str | None = None
    samples: int = 5
    latency_threshold_ms: float | None = None
    needs: tuple[str, ...] = ()
    cold: bool = False
    discover: bool = False
    candidates: tuple[str, ...] = ()  # hosts --discover tries; empty = the usual places
    nameservers: tuple[str, ...] = ()
    log_file: str | None = None
    log_lines: int = 2000
    concurrency: int | None = None
    prompt_tokens: int | None = None  # how long the user's prompts are (warm-up)
    load: bool = False
    load_call: str = "version"
    load_max_rate: float = 500.0
    load_max_requests: int = 2000
    load_max_seconds: float = 20.0
    server_pids: tuple[int, ...] = ()
    error_text: str | None = None
    debug: bool = False
    client: str = "ollama-python"  # a clients.py family name


GetAddrInfo = Callable[..., list[tuple[Any, ...]]]
E = TypeVar("E")
T = TypeVar("T")


@dataclass(frozen=True)
class Route:
    """The path the user's client takes to one URL: through a proxy, or direct.

    ``proxy`` keeps any credentials (it is used, never shown); ``shown`` masks them. ``note``
    says why a proxy the client would use is not used here (a scheme this tool cannot speak).
    """

    client: str
    proxy: str | None
    source: str | None = None
    reason: str = ""
    note: str = ""

    @property
    def proxied(self) -> bool:
        return self.proxy is not None

    @property
    def shown(self) -> str | None:
        from ollama_doctor.proxyenv import redact_proxy

        return None if self.proxy is None else redact_proxy(self.proxy)

    def describe(self) -> str:
        """``via proxy http://127.0.0.1:3128 (HTTP_PROXY)`` or ``direct``."""
        if self.proxy is None:
            return "direct"
        return f"via proxy {self.shown} ({self.source or 'proxy settings'})"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"client": self.client, "route": "proxy" if self.proxied
                               else "direct", "proxy": self.shown, "source": self.source,
                               "reason": self.reason, "described": self.describe()}
        if self.note:
            out["note"] = self.note
        return out

OP_FLOOR = 1.0  # seconds an operation gets even past the run's deadline
SHARED_KEEP_BYTES = 64 * 1024  # of a shared answer's body, kept after parsing: evidence, errors
# How long a probe waits for local work another thread does for it (``Context.once``). The
# runner cuts a probe at the end of the run's budget long before: this bound only keeps an
# abandoned thread from waiting for ever.
ONCE_WAIT = 120.0


@dataclass(frozen=True)
class SharedReply(Generic[T]):
    """One ``GET`` made once per run for the probes that read it (``Context.tags``).

    ``reply`` has the status, headers and any error; its body is cut to the first
    ``SHARED_KEEP_BYTES`` (``truncated`` says so), which is all a probe quotes or reads an error
    from. ``parsed`` is what ``parse`` made of the whole body: ``None`` when the answer was not
    a complete 2xx (an error, a refusal, or a body cut at the byte cap), or for a caller that
    asked for no parse.
    """

    reply: HttpReply
    size: int  # bytes of body received (at most the cap)
    over_cap: bool  # the body was longer than the cap: cut there, not parsed
    parsed: T | None


@dataclass
class Context:
    target: Target
    options: Options = field(default_factory=Options)
    env: Mapping[str, str] = field(default_factory=dict)
    fs_root: Path = Path("/")
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    getaddrinfo: GetAddrInfo = socket.getaddrinfo
    deadline: float | None = None
    results: dict[str, ProbeResult] = field(default_factory=dict)
    error: ErrorAnalysis | None = None  # the pasted client error, analysed (check --error)
    memo: dict[str, Any] = field(default_factory=dict)  # per-run cache of local look-ups
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    # -- name resolution ----------------------------------------------------------------------
    def resolve(self, host: str, port: int, timeout: float | None = None) -> Resolution:
        """``net.resolve`` through ``getaddrinfo``, once per run for each host and port.

        The system resolver's answer does not change within a run, and a resolver that times
        out must cost its timeout once, not once per probe: the proxy and reachability probes
        resolve the target at the same moment and the dns probe again after them, and three
        sequential waits on a dead resolver did not fit the run's budget. A second caller
        waits for the first one's answer (no longer than its own timeout).
        """
        from ollama_doctor import net

        limit = self.op_timeout() if timeout is None else timeout
        key = f"resolve:{host.lower()}:{port}"
        with self._lock:
            pending = self.memo.get(key)
            mine = pending is None
            if mine:
                pending = self.memo[key] = _Pending()
        assert isinstance(pending, _Pending)
        if mine:
            pending.value = net.resolve(self.getaddrinfo, host, port, limit)
            pending.done.set()
        elif not pending.done.wait(limit) or pending.value is None:
            return net.Resolution(host, [], limit * 1000, net.NetError(
                "dns", f"resolver did not answer within {limit:g} s", "TimeoutError"))
        assert pending.value is not None
        return pending.value

    # -- local work started early ---------------------------------------------------------
    def once(self, key: str, compute: Callable[[], T], *, limit: float = ONCE_WAIT) -> T:
        """``compute()`` once per run, kept under ``key`` in ``memo``: the first caller
        computes it, a caller that comes meanwhile waits for that answer (at most ``limit``
        seconds, then ``TimeoutError``), and an exception is raised to every caller.

        The runner claims each probe's ``prepare`` step (its expensive local work: a process
        scan, cgroup files, GPU tools, a log; ``claim``) and computes it in a thread of its
        own; the probe's ``run`` asks for the same key and gets the finished work, or waits
        for the rest of it, or — when no runner started it (a test calling the probe) —
        computes it itself.
        """
        with self._lock:
            pending = self.memo.get(key)
            mine = pending is None
            if mine:
                pending = self.memo[key] = _Once()
        assert isinstance(pending, _Once)
        if mine:
            try:
                pending.value = compute()
            except BaseException as exc:
                pending.error = exc
                raise
            finally:
                pending.done.set()
        elif not pending.done.wait(limit):
            raise TimeoutError(f"{key} did not finish within {limit:g} s")
        if pending.error is not None:
            raise pending.error
        value: T = pending.value
        return value

    def claim(self, key: str) -> Callable[[Callable[[], Any]], None] | None:
        """Take ``key`` for ``once`` now, to compute it in another thread: callers of ``once``
        wait for it from this moment. The returned function computes and publishes it;
        ``None`` when the key is taken already."""
        with self._lock:
            if key in self.memo:
                return None
            entry = self.memo[key] = _Once()

        def fulfil(compute: Callable[[], Any]) -> None:
            try:
                entry.value = compute()
            except Exception as exc:  # raised to each caller of ``once``
                entry.error = exc
            finally:
                entry.done.set()

        return fulfil

    # -- answers shared between probes ----------------------------------------------------
    def tags(self, url: str, headers: Mapping[str, str],
             parse: Callable[[bytes], T | None] | None, *, max_bytes: int) -> SharedReply[T]:
        """``GET url`` (a server's ``/api/tags``) once per run for each set of headers, its
        body parsed once by the first caller that passes ``parse``; a caller that passes
        ``None`` gets the answer without waiting for any parse.

        The models and auth probes both read the model list, at the same moment (both run after
        reachability). For a store of 100,000 models that is a 38 MB answer: fetched and parsed
        twice, it cost twice the time and memory and starved the other probes. As in
        ``resolve``, a caller waits for another one's answer no longer than its own timeout,
        then as long again for its parse. The headers are part of the key: a call with an
        ``Origin`` (auth with ``--origin``) is another request.
        """
        import hashlib

        limit = self.op_timeout()
        digest = hashlib.sha256(repr((url, sorted(headers.items()), max_bytes)).encode())
        key = "tags:" + digest.hexdigest()  # no header value (a key) kept in the memo
        with self._lock:
            pending = self.memo.get(key)
            mine = pending is None
            if mine:
                pending = self.memo[key] = _SharedPending()
        assert isinstance(pending, _SharedPending)
        if mine:
            try:
                pending.answer(self.http("GET", url, headers=dict(headers),
                                         max_bytes=max_bytes, timeout=limit))
            finally:
                pending.answered.set()
        elif not pending.answered.wait(limit):
            return _shared_error(url, f"no answer within {limit:g} s")
        if pending.head is None:  # the probe that made the request crashed
            return _shared_error(url, "no answer")
        if parse is None:
            head: SharedReply[T] = pending.head
            return head
        if not pending.parsing.acquire(timeout=limit):
            return _shared_error(url, f"its model list was not parsed within {limit:g} s")
        try:
            parsed: SharedReply[T] = pending.parsed(parse)
        finally:
            pending.parsing.release()
        return parsed

    # -- time -----------------------------------------------------------------------------
    def remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - self.clock()

    def op_timeout(self, limit: float | None = None) -> float:
        """Timeout for one network operation: ``--timeout`` (or ``limit``), cut to the deadline.

        Past the deadline an operation still gets ``min(timeout, 1 s)``: enough for a healthy
        server on a loaded machine, little enough that a run of stragglers stays bounded.
        """
        value = self.options.timeout if limit is None else limit
        left = self.remaining()
        if left is not None:
            value = min(value, max(left, min(value, OP_FLOOR)))
        return value

    # -- files ----------------------------------------------------------------------------
    def path(self, name: str) -> Path:
        """``/proc/1/cgroup`` → the same path under the injected filesystem root."""
        return self.fs_root / name.lstrip("/")

    # -- what the user's client sends -------------------------------------------------------
    @property
    def client(self) -> ClientFamily:
        """The client family whose rules apply (``--client``, or the pasted error's)."""
        from ollama_doctor import clients

        return clients.get(self.options.client)

    def key_variable(self) -> str | None:
        """The variable whose value the client sends as a bearer token, when it is set:
        ``OLLAMA_API_KEY`` for clients that read it, ``OPENAI_API_KEY`` for OpenAI's SDKs."""
        name = self.client.key_env
        return name if name and self.env.get(name, "") else None

    def client_headers(self, *, with_origin: bool = True) -> dict[str, str]:
        """Headers the user's client sends: ``--header`` values, its key variable as a bearer
        token (ollama-python: ``OLLAMA_API_KEY``; openai: ``OPENAI_API_KEY``; clients that read
        neither send none), unless an Authorization header is given, and ``--origin``."""
        headers = {name: value for name, value in self.options.headers}
        lower = {k.lower() for k in headers}
        variable = self.key_variable()
        key = self.env.get(variable, "") if variable else ""
        # A key with a stray control character (a trailing \r) is left out: httpx refuses the
        # whole request ('Illegal header value'), which would read as an unresponsive server.
        # The auth probe reports the broken key instead (credential-malformed).
        if key and not key.isprintable():
            key = ""
        if key and "authorization" not in lower:
            headers["Authorization"] = f"Bearer {key}"
        if with_origin and self.options.origin and "origin" not in lower:
            headers["Origin"] = self.options.origin
        return headers

    def secrets(self) -> list[str]:
        """Exact strings that must never be printed."""
        out = [v for k, v in self.options.headers if _secretish(k)]
        out += [v.split(None, 1)[-1] for k, v in self.options.headers if _secretish(k)]
        for name, value in self.env.items():
            if _secretish(name) and value:
                out.append(value)
            if "PROXY" in name.upper() and "@" in value:
                out.extend(_url_password(value))
        return [s for s in out if s]

    def client_base_url(self) -> str:
        """Where the client sends its calls: the target's own path when it has one, else the
        server root plus the client's base path (``/v1`` for OpenAI's SDKs). The server stays
        ``target.root_url`` either way: a base path is not another server."""
        if self.target.path:
            return self.target.base_url
        return self.target.root_url + self.client.base_path

    # -- the client's path -------------------------------------------------------------------
    def route(self, url: str | None = None) -> Route:
        """The path the client takes to ``url`` (default: the target's root), decided once per
        scheme, host and port from the client family's proxy rules."""
        from urllib.parse import urlsplit

        url = url or self.target.root_url + "/"
        parts = urlsplit(url)
        key = f"route:{parts.scheme.lower()}://{parts.netloc.lower()}"
        if key not in self.memo:
            self.memo[key] = self._decide_route(url)
        route: Route = self.memo[key]
        return route

    def _decide_route(self, url: str) -> Route:
        from ollama_doctor import proxyenv

        client = self.client
        if client.proxy_family is None:
            return Route(client.name, None, reason=f"{client.label} reads no proxy variable")
        decision = proxyenv.proxy_for(url, self.env, client.proxy_family)
        if decision.proxy_url is None:
            return Route(client.name, None, reason=decision.reason)
        scheme = proxyenv.proxy_scheme(decision.proxy_url)
        usable = scheme in proxyenv.HTTPX_SCHEMES
        if usable and scheme in proxyenv.SOCKS_SCHEMES and client.proxy_family != "httpx":
            usable = _socksio_available()
        if not usable:  # httpx clients fail on it themselves (the proxy probe says so)
            return Route(client.name, None, decision.source, decision.reason,
                         note=f"{client.label} would use "
                              f"{proxyenv.redact_proxy(decision.proxy_url)}, a "
                              f"{scheme}:// proxy this tool cannot speak; probed directly")
        return Route(client.name, decision.proxy_url, decision.source, decision.reason)

    def path_facts(self, url: str | None = None) -> dict[str, Any]:
        return self.route(url).to_dict()

    def on_path(self, outcome: Outcome, url: str | None = None) -> Outcome:
        """Say in a probe's summary and facts which path its requests took (``Outcome``)."""
        from ollama_doctor.result import Status

        route = self.route(url)
        outcome.facts.setdefault("path", route.to_dict())
        if outcome.status != Status.SKIP and not outcome.summary.endswith(route.describe()):
            outcome.summary = f"{outcome.summary} — {route.describe()}"
        return outcome

    # -- network --------------------------------------------------------------------------
    def _verify_for(self, url: str) -> Any:
        """The TLS context for requests to ``url``. Given none, httpx builds one and loads the
        CA bundle for every client, whether or not it speaks TLS. An ``http://`` server is
        never spoken TLS to, so it gets a context that trusts nothing and costs nothing
        (loading the bundle: 45-70 ms of CPU on reachability's critical path); an
        ``https://`` one the client's trust store (``net.trust_store``). (The connection to
        an ``https://`` proxy does not use this context: httpcore builds its own.)"""
        from ollama_doctor import net

        if url.startswith("http://"):
            return net.no_tls_context()
        if "trust_store" not in self.memo:
            self.memo["trust_store"] = net.trust_store(self.env)
        return self.memo["trust_store"]

    def http(self, method: str, url: str, *, direct: bool = False, **kwargs: Any) -> HttpReply:
        """One bounded HTTP exchange along the client's path (``route``), or straight to the
        server with ``direct=True``; see ``net.request``. Never raises for network trouble."""
        from ollama_doctor import net

        kwargs.setdefault("timeout", self.op_timeout())
        if "verify" not in kwargs:
            kwargs["verify"] = self._verify_for(url)
        if "proxy" not in kwargs and not direct:
            kwargs["proxy"] = self.route(url).proxy
        return net.request(method, url, **kwargs)

    def http_client(self, *, url: str | None = None, timeout: float | httpx.Timeout | None = None,
                    verify: Any = None, direct: bool = False) -> httpx.Client:
        """An ``httpx.Client`` along the client's path to ``url`` (default: the target), for a
        probe that makes several calls on one kept-alive connection or reads a stream.
        Environment proxies are never read by it (``trust_env=False``): the route decides."""
        import httpx

        url = url or self.target.root_url + "/"
        proxy = None if direct else self.route(url).proxy
        return httpx.Client(trust_env=False, proxy=proxy, follow_redirects=False,
                            timeout=self.op_timeout() if timeout is None else timeout,
                            verify=self._verify_for(url) if verify is None else verify)

    def async_client(self, *, url: str | None = None,
                     timeout: float | httpx.Timeout | None = None,
                     **kwargs: Any) -> httpx.AsyncClient:
        """``http_client``'s asynchronous twin (the load probe)."""
        import httpx

        url = url or self.target.root_url + "/"
        kwargs.setdefault("verify", self._verify_for(url))
        return httpx.AsyncClient(trust_env=False, proxy=self.route(url).proxy,
                                 follow_redirects=False,
                                 timeout=self.op_timeout() if timeout is None else timeout,
                                 **kwargs)

    def result(self, probe_id: str) -> ProbeResult | None:
        """Another probe's result: its status, summary and findings. Its facts are read by
        type, through ``facts``."""
        return self.results.get(probe_id)

    def facts(self, kind: type[E]) -> E | None:
        """The typed evidence (``ollama_doctor.facts``) of the probe that makes ``kind``;
        ``None`` when that probe did not run or established none."""
        result = self.results.get(kind.PROBE)  # type: ignore[attr-defined]
        if result is None:
            return None
        evidence = result.evidence
        if evidence is None:  # a result built without it (by a test, or from a report)
            evidence = result.evidence = kind.from_result(  # type: ignore[attr-defined]
                result.facts, result.findings)
        return evidence if isinstance(evidence, kind) else None


class _Once:
    """One piece of work (``Context.once``) that other threads may be waiting for."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None


class _Pending:
    """One resolution that another probe may be waiting for."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: Resolution | None = None


class _SharedPending:
    """One shared request: answered (the head of its answer and, until parsed, the whole
    body), then parsed by the first caller that asks."""

    def __init__(self) -> None:
        self.answered = threading.Event()
        self.parsing = threading.Lock()
        self.head: SharedReply[Any] | None = None  # not parsed
        self._body: bytes | None = None
        self._value: SharedReply[Any] | None = None

    def answer(self, reply: HttpReply) -> None:
        import dataclasses

        body = reply.body
        self._body = body if reply.ok and not reply.truncated else None  # else not parsed
        head = dataclasses.replace(reply, body=body[:SHARED_KEEP_BYTES],
                                   truncated=reply.truncated or len(body) > SHARED_KEEP_BYTES)
        self.head = SharedReply(head, len(body), reply.truncated, None)

    def parsed(self, parse: Callable[[bytes], Any]) -> SharedReply[Any]:
        """The answer with ``parse`` of its body, parsed on the first call (under
        ``parsing``); the body is let go then."""
        import dataclasses

        if self._value is None:
            assert self.head is not None
            body, self._body = self._body, None
            self._value = dataclasses.replace(
                self.head, parsed=None if body is None else parse(body))
        return self._value


def _shared_error(url: str, what: str) -> SharedReply[Any]:
    from ollama_doctor import net

    return SharedReply(net.HttpReply("GET", url, error=net.NetError(
        "read-timeout", f"{what} (the request another probe made for this one)",
        "TimeoutError")), 0, False, None)


def _socksio_available() -> bool:
    import importlib

    try:
        importlib.import_module("socksio")
    except Exception:
        return False
    return True


def _secretish(name: str) -> bool:
    from ollama_doctor.redact import is_secret_name

    return is_secret_name(name)


def _url_password(value: str) -> list[str]:
    from urllib.parse import unquote, urlsplit

    try:
        password = urlsplit(value).password
    except ValueError:
        return []
    return [password, unquote(password)] if password else []
