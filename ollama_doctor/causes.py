"""The cause catalogue and the documented HTTP error-code table: data that code looks up.

Both are public contracts. JSON consumers key on cause ids, and ``explain`` and the README's
tables are generated from these tables. Add causes; never rename one.

``layer`` orders causes from the bottom of the stack (configuration, then the network path, the
transport, the responder's identity, access control, the model, the server, performance) to the
top. A lower layer blocks everything above it, so the diagnosis ranks it first (see
``diagnosis.rank``).

Which side produces each status comes from ``docs/ollama-wire.md`` §2 (the status table): Ollama
never sends 429 or
504 for local models, and 401 only on the cloud path.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from ollama_doctor import remedies as R
from ollama_doctor.result import FixStep, Retry


class Layer(IntEnum):
    CONFIG = 0
    PATH = 1
    TRANSPORT = 2
    IDENTITY = 3
    ACCESS = 4
    MODEL = 5
    SERVER = 6
    PERFORMANCE = 7


@dataclass(frozen=True)
class Cause:
    id: str
    title: str
    meaning: str
    code: int | None
    layer: Layer
    fix: tuple[FixStep, ...] = ()
    retry: Retry | None = None  # overrides the code's generic retry advice


@dataclass(frozen=True)
class CodeRow:
    code: int
    name: str
    meaning: str
    check: str
    action: str
    retry: Retry
    source: str  # "ollama", "intermediary" or "both"
    source_note: str


BACKOFF = "exponential backoff: 1, 2, 4, 8 … seconds, capped at 30 s"
NO_RETRY_4XX = Retry(False, "Do not retry: the same request fails the same way until it changes.")
RETRY_BACKOFF = Retry(True, f"Retry with {BACKOFF}.")

CODES: tuple[CodeRow, ...] = (
    CodeRow(
        400, "Bad Request",
        "The request is malformed or asks for something the model cannot do.",
        "The JSON body, field types, `keep_alive` units, and the model's capabilities "
        "(`ollama show MODEL`).",
        "Fix the request: valid JSON, a model name, durations with units, a model that supports "
        "the call (tools, vision, embeddings).",
        NO_RETRY_4XX, "ollama",
        "Ollama: bad JSON, missing model, missing capability, bad keep_alive, prompt too long.",
    ),
    CodeRow(
        401, "Unauthorized",
        "Credentials are missing or wrong.",
        "Whether a proxy in front of Ollama wants a token (`WWW-Authenticate` header); for "
        "`:cloud` models, whether this server is signed in.",
        "Send the token the proxy expects (`OLLAMA_API_KEY` or an `Authorization` header); for "
        "cloud models run `ollama signin`.",
        NO_RETRY_4XX, "both",
        "Ollama only on the cloud path (JSON with `signin_url`); otherwise an auth proxy, since "
        "local Ollama never checks `Authorization`.",
    ),
    CodeRow(
        403, "Forbidden",
        "The request was refused by policy.",
        "An empty body means Ollama's Origin (CORS) or Host check: repeat without `Origin` and "
        "with `Host: localhost`. A body means a proxy, WAF or disabled cloud.",
        "Add the Origin to `OLLAMA_ORIGINS` or rewrite the Host header to `localhost:11434` in the "
        "proxy; allow-list the host on a corporate proxy.",
        NO_RETRY_4XX, "both",
        "Ollama: empty body (Origin or Host check) or `ollama cloud is disabled`; otherwise a "
        "proxy or WAF.",
    ),
    CodeRow(
        404, "Not Found",
        "The model or the path does not exist on this server.",
        "A JSON `model … not found` means the model; plain text `404 page not found` means the "
        "base URL or path.",
        "`ollama pull MODEL` with the exact name, or fix the base URL (`http://host:11434`, or "
        "`…/v1` for OpenAI clients).",
        NO_RETRY_4XX, "ollama",
        "Ollama: JSON `model … not found` or gin's plain-text `404 page not found`.",
    ),
    CodeRow(
        429, "Too Many Requests",
        "Calls are being throttled.",
        "The `Retry-After` header, the body (Ollama Cloud quota vs a gateway), and the rate the "
        "client sends.",
        "Pace calls under the limit with a token bucket and back off; for cloud quota wait or "
        "upgrade.",
        Retry(True, f"Retry after `Retry-After` when given, else with {BACKOFF}."),
        "intermediary",
        "Never from local Ollama; from a gateway or passed through from ollama.com.",
    ),
    CodeRow(
        500, "Internal Server Error",
        "The server failed while handling the call, usually while loading or running the model.",
        "The error message (out of memory, runner terminated, load timeout) and the server log.",
        "Free memory or use a smaller model or context; upgrade Ollama; read the server log.",
        RETRY_BACKOFF, "ollama",
        "Ollama: load timeout, runner crash, out of memory, incompatible model.",
    ),
    CodeRow(
        502, "Bad Gateway",
        "Something in front of Ollama could not get an answer from it.",
        "Whether a proxy variable applies to the URL; the `Server`/`Via` headers and an HTML "
        "body name the intermediary.",
        "Exclude the Ollama host from the proxy (`NO_PROXY`), or fix the reverse proxy's upstream.",
        RETRY_BACKOFF, "intermediary",
        "Ollama only for the cloud proxy (JSON); otherwise a proxy that cannot reach Ollama.",
    ),
    CodeRow(
        503, "Service Unavailable",
        "The server's queue of requests waiting for a model load is full.",
        "The body `server busy, please try again.  maximum pending requests exceeded`, and how "
        "many calls the client sends at once.",
        "Limit client concurrency; raise `OLLAMA_MAX_QUEUE` or `OLLAMA_NUM_PARALLEL`; keep the "
        "model loaded.",
        RETRY_BACKOFF, "both",
        "Ollama when `OLLAMA_MAX_QUEUE` is exceeded; also load balancers with no healthy upstream.",
    ),
    CodeRow(
        504, "Gateway Timeout",
        "An intermediary gave up waiting for Ollama.",
        "The proxy's read timeout against the model's load and generation time; whether "
        "streaming works.",
        "Raise the proxy's read timeout (nginx `proxy_read_timeout 600s`), stream, or preload "
        "the model.",
        RETRY_BACKOFF, "intermediary",
        "Never from Ollama (its HTTP server sets no timeouts); always a gateway.",
    ),
)

CODE_TABLE: dict[int, CodeRow] = {row.code: row for row in CODES}


def _f(text: str, *commands: R.Command) -> FixStep:
    return R.step(text, *commands)


LOOPBACK_URL = "http://127.0.0.1:11434"


NO_FIX_NO_RETRY = Retry(False, "Retrying does not help until the cause is fixed.")

CATALOGUE: tuple[Cause, ...] = (
    Cause(
        "unspecified-address", "The client targets a bind address",
        "The client targets `0.0.0.0` or `::`, a bind address rather than a destination.",
        None, Layer.CONFIG,
        (_f("Point the client at loopback (or the server's real address) instead.",
            R.export_host(LOOPBACK_URL)),),
        Retry(False, "Works on Linux and macOS, fails on Windows and in some clients; "
                     "retrying does not change that."),
    ),
    Cause(
        "wrong-port-scheme", "Wrong port or scheme",
        "A scheme without a port (→ 80/443), or TLS spoken to Ollama's plain-HTTP port.",
        None, Layer.CONFIG,
        (_f("Use plain http and name the port: Ollama serves HTTP only.",
            R.export_host(LOOPBACK_URL)),),
        NO_FIX_NO_RETRY,
    ),
    Cause(
        "client-parsing-differs", "Clients read this target differently",
        "The Go client (the `ollama` CLI) and ollama-python turn the same `OLLAMA_HOST` value "
        "into different URLs.",
        None, Layer.CONFIG,
        (_f("Write the target in full, with scheme, host and port.",
            R.export_host(LOOPBACK_URL)),),
        NO_FIX_NO_RETRY,
    ),
    Cause(
        "proxy-unsupported", "Proxy setting the client cannot use",
        "A proxy setting Python clients cannot use (SOCKS without `socksio`, unknown scheme); "
        "it breaks `import ollama` itself.",
        None, Layer.CONFIG,
        (_f("Install SOCKS support, or unset the variable for this client.",
            R.sh("pip install 'httpx[socks]'"), R.unset("ALL_PROXY", "all_proxy")),),
        NO_FIX_NO_RETRY,
    ),
    Cause(
        "proxy-unreachable", "The configured proxy does not answer",
        "A configured proxy does not answer or does not resolve.",
        None, Layer.PATH,
        (_f("Start the proxy, fix its address, or exclude the Ollama host from proxying.",
            R.export("NO_PROXY", R.LOOPBACK_NO_PROXY)),),
        NO_FIX_NO_RETRY,
    ),
    Cause(
        "proxy-captures-local", "A proxy captures traffic meant for Ollama",
        "A proxy variable applies to a local or LAN target that `NO_PROXY` does not cover, and "
        "the proxied path fails or differs from the direct one.",
        502, Layer.PATH,
        (_f("Exclude the Ollama host from proxying (keep your existing entries).",
            R.export("NO_PROXY", R.LOOPBACK_NO_PROXY)),),
        Retry(False, "Every retry goes through the same proxy; set NO_PROXY instead."),
    ),
    Cause(
        "proxy-blocks", "The proxy refuses the request",
        "The proxy itself refuses or fails the request (403/407/5xx page from the proxy).",
        403, Layer.PATH,
        (_f("Ask the proxy's administrators to allow the Ollama host, or route around it."),),
        Retry(False, "The proxy's policy answers the same way every time."),
    ),
    Cause(
        "dns-failure", "The name does not resolve",
        "The target name does not resolve (NXDOMAIN, SERVFAIL, resolver timeout).",
        None, Layer.PATH,
        (_f("Use an IP address or a name that resolves from where the client runs."),),
        NO_FIX_NO_RETRY,
    ),
    Cause(
        "ipv6-localhost", "localhost resolves to the address family the server does not use",
        "The name resolves to `::1` first but the server listens on IPv4 only (or the reverse).",
        None, Layer.PATH,
        (_f("Use the IPv4 literal, which every client dials the same way.",
            R.export_host(LOOPBACK_URL)),
         _f("Or make the server listen on both families.",
             R.serve_with("OLLAMA_HOST", "[::]:11434"))),
        NO_FIX_NO_RETRY,
    ),
    Cause(
        "server-not-running", "No server is listening",
        "Nothing listens at the target (TCP refused), and when local no Ollama process runs.",
        None, Layer.TRANSPORT,
        (_f("Start Ollama, then check it answers.", R.sh("ollama serve"),
            R.curl(f"{LOOPBACK_URL}/")),
         _f("If it runs as a service, look at why it stopped.",
            R.service_status(), R.journal())),
        Retry(False, "Retrying does not help until a server listens."),
    ),
    Cause(
        "server-unresponsive", "The server accepts connections but never answers",
        "Something accepts TCP connections at the target but sends no HTTP answer in time "
        "(a hung server, a stalled proxy, or a non-HTTP service).",
        None, Layer.TRANSPORT,
        tuple(R.unresponsive_fix()),
        Retry(False, "A hung server stays hung until restarted."),
    ),
    Cause(
        "container-localhost", "localhost inside a container is not the host",
        "The client runs in a container or WSL and targets loopback, but the server runs on the "
        "host.",
        None, Layer.TRANSPORT,
        (_f("Reach the host's server through the host gateway name.",
            R.docker_run("--add-host=host.docker.internal:host-gateway", image="IMAGE"),
            R.export_host("http://host.docker.internal:11434")),
         _f("Or share the host's network.", R.docker_run("--network host", image="IMAGE"))),
        NO_FIX_NO_RETRY,
    ),
    Cause(
        "bound-to-loopback", "The server listens on loopback only",
        "The server listens only on loopback but the client targets another address.",
        None, Layer.TRANSPORT,
        (_f("Make the server listen on every interface, in the service's environment.",
            R.systemd_edit("OLLAMA_HOST", "0.0.0.0:11434"), *R.systemd_restart()),),
        NO_FIX_NO_RETRY,
    ),
    Cause(
        "connect-timeout", "Connecting times out",
        "TCP connect times out: a firewall dropping packets, a wrong address or route.",
        None, Layer.TRANSPORT,
        (_f("Open port 11434 on the server's firewall, and check the address and route.",
            R.sh("sudo ufw allow 11434/tcp"), R.sh("sudo firewall-cmd --add-port=11434/tcp")),),
        Retry(False, "Dropped packets stay dropped; fix the firewall or address."),
    ),
    Cause(
        "tls-error", "TLS verification fails",
        "The certificate is not trusted, expired, or for another name (often a TLS-intercepting "
        "proxy).",
        None, Layer.TRANSPORT,
        (_f("Install the intercepting proxy's CA, or point Python at it.",
            R.export("SSL_CERT_FILE", "CORPORATE_CA.pem"),
            R.export("REQUESTS_CA_BUNDLE", "CORPORATE_CA.pem")),),
        NO_FIX_NO_RETRY,
    ),
    Cause(
        "not-ollama", "Something other than Ollama answers",
        "Something other than Ollama answers at the target.",
        None, Layer.IDENTITY,
        (_f("Find what owns the port, and point the client at Ollama's real address.",
            R.listening_on()),),
        NO_FIX_NO_RETRY,
    ),
    Cause(
        "wrong-base-path", "The base URL's path is wrong",
        "Plain-text `404 page not found`: a missing or doubled `/v1` or `/api`.",
        404, Layer.IDENTITY,
        (_f("Use the server root for Ollama clients, and `/v1` only for OpenAI-style clients.",
            R.python(f"ollama.Client(host={LOOPBACK_URL!r})   # ollama-python"),
            R.python(f"openai.OpenAI(base_url={LOOPBACK_URL + '/v1'!r}, "
                     "api_key='ollama')   # OpenAI SDK")),),
        None,
    ),
    Cause(
        "wrong-instance", "Another Ollama server answers",
        "Another Ollama server or model store answers than the one the user looked at.",
        404, Layer.IDENTITY,
        (_f("Run one server, or point the client at the one that holds the models.",
            R.sh("ps aux | grep 'ollama serve'"), R.sh("ollama list")),),
        None,
    ),
    Cause(
        "method-not-allowed", "Wrong HTTP method",
        "A call uses the wrong HTTP method (often a POST turned into GET by a redirect).",
        405, Layer.ACCESS,
        (_f("Use the documented method, and a base URL without a trailing slash."),),
        NO_RETRY_4XX,
    ),
    Cause(
        "bad-request", "The request is malformed",
        "The request is malformed (JSON, fields, types, `keep_alive`).", 400, Layer.ACCESS,
        (_f("Send valid JSON with a model name; give `keep_alive` a unit (\"10m\") or a number."),),
        None,
    ),
    Cause(
        "auth-required", "An intermediary demands credentials",
        "An intermediary demands credentials that are missing or wrong (local Ollama never "
        "checks `Authorization`).",
        401, Layer.ACCESS,
        (_f("Send the token the proxy expects; ollama-python sends OLLAMA_API_KEY as a bearer.",
            R.api_key_export()),),
        None,
    ),
    Cause(
        "credential-malformed", "The API key holds a stray character",
        "The key variable the client sends as a bearer token holds a control character (a "
        "`.env` saved with Windows line endings leaves a trailing `\\r`): the client sends a "
        "broken `Authorization` header, or refuses to send it at all.", None, Layer.CONFIG,
        (_f("Remove the stray character where the variable is set.",
            R.sh("dos2unix .env")),),
        Retry(False, "Every call sends the same broken header until the variable is fixed."),
    ),
    Cause(
        "cloud-signin-required", "The cloud model needs sign-in",
        "A cloud model needs `ollama signin` (401 with `signin_url`).", 401, Layer.ACCESS,
        (_f("Sign this server in to ollama.com.", R.sh("ollama signin")),),
        None,
    ),
    Cause(
        "cloud-disabled", "Cloud models are turned off on this server",
        "The server refuses cloud models: 403 `ollama cloud is disabled` (`OLLAMA_NO_CLOUD=1` "
        "or `disable_ollama_cloud` in its config).", 403, Layer.ACCESS,
        (_f("Turn cloud models back on in the server's environment (or its config), then "
            "restart it; or use a local model.",
            R.systemd_unset("OLLAMA_NO_CLOUD"),
            *R.systemd_restart()),),
        NO_RETRY_4XX,
    ),
    Cause(
        "origin-forbidden", "The caller's Origin is not allowed",
        "Empty-body 403 from Ollama's CORS check; `OLLAMA_ORIGINS` lacks the caller's Origin.",
        403, Layer.ACCESS,
        (_f("Allow the Origin in the server's environment (no spaces after commas), then "
            "restart the server.",
            R.systemd_edit("OLLAMA_ORIGINS", "ORIGIN"), *R.systemd_restart()),),
        None,
    ),
    Cause(
        "host-forbidden", "The Host header is not allowed",
        "Empty-body 403 from Ollama's Host-header check behind a reverse proxy or tunnel.",
        403, Layer.ACCESS,
        (_f("Rewrite the Host header to localhost in the proxy (nginx):",
            R.nginx("proxy_set_header Host localhost:11434;")),
         _f("or in the tunnel:",
            R.sh("ngrok http 11434 --host-header=\"localhost:11434\""),
            R.sh("cloudflared tunnel --url http://localhost:11434 "
                 "--http-host-header=\"localhost:11434\"")),
         _f("Or make Ollama listen on all interfaces, which turns the Host check off.",
            R.serve_with("OLLAMA_HOST", "0.0.0.0:11434"))),
        None,
    ),
    Cause(
        "forbidden", "Refused by policy",
        "Any other 403: WAF, quota, cloud disabled.", 403, Layer.ACCESS,
        (_f("Read the 403 body: it names the policy that refused the call."),),
        None,
    ),
    Cause(
        "rate-limited", "Calls are throttled",
        "A gateway or Ollama Cloud throttles calls.", 429, Layer.ACCESS,
        (_f("Pace calls below the limit with a client-side token bucket, and back off on 429."),),
        None,
    ),
    Cause(
        "model-not-found", "The model is not on this server",
        "The model is not on this server (with the nearest installed names).", 404, Layer.MODEL,
        (_f("Pull the exact name, or use one that `ollama list` shows.", R.pull("MODEL")),),
        None,
    ),
    Cause(
        "model-capability", "The model cannot do what the call asks",
        "The model lacks a capability the call needs (tools, vision, generate, embedding).",
        400, Layer.MODEL,
        (_f("Use a model with the capability, or drop it from the call.",
            R.sh("ollama show MODEL")),),
        None,
    ),
    Cause(
        "ollama-outdated", "Ollama is too old",
        "The server is too old for the model or feature.", None, Layer.MODEL,
        (_f("Upgrade Ollama.", R.sh("curl -fsSL https://ollama.com/install.sh | sh")),),
        NO_FIX_NO_RETRY,
    ),
    Cause(
        "runner-crashed", "The model runner crashed",
        "The model runner terminated or stopped.", 500, Layer.SERVER,
        (_f("Read the server log around the crash; upgrade Ollama; try a smaller model.",
            R.journal()),),
        Retry(False, "A retry reloads the model and usually crashes the same way."),
    ),
    Cause(
        "out-of-memory", "The model does not fit in memory",
        "The model does not fit: OOM messages, or memory limits below the model's size.",
        500, Layer.SERVER,
        (_f("Use a smaller model or quantisation, or a smaller context.",
            R.env_line("OLLAMA_CONTEXT_LENGTH", "4096"),
                R.env_line("OLLAMA_KV_CACHE_TYPE", "q8_0")),),
        Retry(False, "It fails again until memory is freed or the model gets smaller."),
    ),
    Cause(
        "memory-limit", "A memory limit is below the model's size",
        "A container or host memory limit is below what the model needs.", None, Layer.SERVER,
        (_f("Raise the container's memory limit above the model's size plus headroom.",
            R.sh("docker update --memory=16g --memory-swap=16g CONTAINER"),
            R.sh("kubectl set resources deployment/DEPLOYMENT --limits=memory=16Gi")),),
        Retry(False, "It fails again until the limit is raised or the model gets smaller."),
    ),
    Cause(
        "server-error", "The server failed",
        "Any other 500.", 500, Layer.SERVER,
        (_f("Read the server log for the request's time.", R.journal()),),
        None,
    ),
    Cause(
        "bad-gateway", "An intermediary cannot reach Ollama",
        "A 502 from an intermediary that cannot reach Ollama.", 502, Layer.SERVER,
        (_f("Check the reverse proxy's upstream address and that Ollama runs there."),),
        None,
    ),
    Cause(
        "server-busy", "The server's queue is full",
        "The server's queue is full (`OLLAMA_MAX_QUEUE`).", 503, Layer.SERVER,
        (_f("Limit concurrent calls in the client, or raise the queue on the server.",
            R.env_line("OLLAMA_MAX_QUEUE", "1024"), R.env_line("OLLAMA_NUM_PARALLEL", "4")),),
        None,
    ),
    Cause(
        "gateway-timeout", "A gateway timed out waiting",
        "An intermediary timed out waiting (load or generation longer than its limit).",
        504, Layer.SERVER,
        (_f("Raise the proxy's read timeout, and stream responses.",
            R.nginx("proxy_read_timeout 600s;"), R.nginx("proxy_buffering off;")),),
        Retry(False, "The same call takes as long again; raise the gateway timeout or stream."),
    ),
    Cause(
        "slow-model-load", "Loading the model takes longer than the client waits",
        "Loading the model takes longer than the client's timeout.", 504, Layer.SERVER,
        (),
        Retry(False, "Retrying with the same client timeout can never succeed: each disconnect "
                     "aborts the load, so the model never becomes warm."),
    ),
    Cause(
        "high-latency", "The path is slow or lossy",
        "Round trips, jitter or failures high enough to break calls.", None, Layer.PERFORMANCE,
        (_f("Raise client timeouts, and look for the slow hop (VPN, proxy, Wi-Fi)."),),
        Retry(True, f"Transient failures may pass with {BACKOFF}."),
    ),
    Cause(
        "gpu-offload", "The model runs partly or wholly on CPU",
        "The model runs partly or wholly on CPU.", None, Layer.PERFORMANCE,
        (_f("Use a smaller model, quantisation or context so it fits in VRAM.",
            R.sh("ollama ps")),),
        Retry(False, "Slowness is not an error; retrying does not change where layers run."),
    ),
    Cause(
        "fd-limit-low", "The open-file limit is low",
        "The open-file limit is too low for the call volume.", None, Layer.PERFORMANCE,
        (_f("Raise the limit where Ollama is started: in the shell that runs `ollama serve`, for a "
            "systemd service, or for a container.", R.sh("ulimit -n 65536"),
            R.systemd_setting("LimitNOFILE=65536"),
            R.docker_run("--ulimit nofile=65536:65536", "-d", "-p 11434:11434",
                         "-v ollama:/root/.ollama", "--name ollama")),),
        NO_FIX_NO_RETRY,
    ),
    Cause(
        "disk-space-low", "Little free disk where models live",
        "Too little free space where models are stored.", None, Layer.PERFORMANCE,
        (_f("Free space, or move the model store.", R.sh("ollama rm UNUSED_MODEL"),
            R.serve_with("OLLAMA_MODELS", "/bigdisk/ollama/models")),),
        NO_FIX_NO_RETRY,
    ),
    Cause(
        "setting-not-applied", "A setting is not in the server's environment",
        "A setting made in a shell is not in the environment of the server that runs.",
        None, Layer.PERFORMANCE,
        (_f("Set it where the server starts, then restart it.",
            R.systemd_edit("NAME", "VALUE"), *R.systemd_restart()),),
        NO_FIX_NO_RETRY,
    ),
    Cause(
        "reload-churn", "The model reloads on every call",
        "Calls with differing options force the model to reload again and again.",
        None, Layer.PERFORMANCE,
        (_f("Send the same `num_ctx` (or none) from every client.",
            R.env_line("OLLAMA_CONTEXT_LENGTH", "8192")),),
        Retry(False, "Each differing call reloads again; align the options."),
    ),
    Cause(
        "thinking-budget", "A reasoning model spends the whole budget thinking",
        "A reasoning model uses every token it may generate on thinking and answers with empty "
        "content (`done_reason`/`finish_reason` `length`).", None, Layer.MODEL,
        (_f("Turn thinking off for calls that need a short answer, or allow more tokens.",
            R.json_line('"think": false'), R.json_line('"options": {"num_predict": 1024}')),),
        Retry(False, "The same budget runs out the same way; set think: false "
                     "(reasoning_effort: \"none\" on /v1) or raise num_predict / max_tokens."),
    ),
    Cause(
        "prompt-truncated", "Prompts are cut to the context length",
        "Prompts longer than the context are silently cut.", None, Layer.PERFORMANCE,
        (_f("Send a larger `options.num_ctx`, or set the server default.",
            R.env_line("OLLAMA_CONTEXT_LENGTH", "32768")),),
        Retry(False, "The same prompt is cut the same way."),
    ),
)

CAUSES: dict[str, Cause] = {cause.id: cause for cause in CATALOGUE}


def cause(cause_id: str) -> Cause:
    """Look a cause up; an unknown id is a programming error, so it raises ``KeyError``."""
    return CAUSES[cause_id]


def retry_for(cause_id: str, code: int | None) -> Retry:
    """The retry advice for a cause: its own, else its code's generic advice."""
    entry = CAUSES[cause_id]
    if entry.retry is not None:
        return entry.retry
    if code is not None and code in CODE_TABLE:
        return CODE_TABLE[code].retry
    if code is not None and 400 <= code < 500:
        return NO_RETRY_4XX
    return NO_FIX_NO_RETRY
