"""Pasted client errors → candidate causes (failure-modes.md §2 and its closing table)."""

from __future__ import annotations

import time

import pytest

from ollama_doctor.errortext import CANNOT_CONNECT, REFUSED, analyse, target_from

# (what the user pasted, the candidates the table names, most likely first)
CASES = [
    ("ConnectionError: Failed to connect to Ollama. Please check that Ollama is downloaded, "
     "running and accessible. https://ollama.com/download", list(CANNOT_CONNECT)),
    ("[TypeError: fetch failed] { cause: [Error: connect ECONNREFUSED 127.0.0.1:11434]",
     list(REFUSED)),
    ("requests.exceptions.ConnectionError: HTTPConnectionPool(host='localhost', port=11434): "
     "Max retries exceeded with url: /api/chat (Caused by NewConnectionError('<urllib3."
     "connection.HTTPConnection object at 0x7f>: Failed to establish a new connection: "
     "[Errno 111] Connection refused'))", list(REFUSED)),
    ("HTTPConnectionPool(host='localhost', port=11434): Max retries exceeded … [WinError 10061] "
     "No connection could be made because the target machine actively refused it",
     list(REFUSED)),
    ("curl: (7) Failed to connect to 192.168.0.184 port 11434 after 0 ms: Couldn't connect to "
     "server", list(REFUSED)),
    ("Error: could not connect to ollama app, is it running?", list(CANNOT_CONNECT)),
    ("TypeError: fetch failed\n  cause: Error: connect ECONNREFUSED ::1:11434",
     ["ipv6-localhost"]),
    ("httpx.ConnectError: [Errno -2] Name or service not known", ["dns-failure"]),
    ("httpx.ConnectError: [Errno -3] Temporary failure in name resolution", ["dns-failure"]),
    ("TypeError: fetch failed cause: Error: getaddrinfo ENOTFOUND host.docker.internal",
     ["dns-failure"]),
    ("(Caused by NameResolutionError(\"<urllib3.connection.HTTPConnection object>: Failed to "
     "resolve 'ollama' ([Errno -3] Temporary failure in name resolution)\"))", ["dns-failure"]),
    ("httpx.ConnectError: [WinError 10049] The requested address is not valid in its context",
     ["unspecified-address"]),
    ("curl: (28) Failed to connect to 192.168.1.194 port 11434 after 21069 ms: Timed out",
     ["connect-timeout"]),
    ("httpx.ConnectTimeout: timed out", ["connect-timeout"]),
    ("httpx.ReadTimeout: timed out", ["slow-model-load", "high-latency"]),
    ("ollama: context deadline exceeded", ["slow-model-load", "high-latency"]),
    ("TypeError: fetch failed cause: HeadersTimeoutError: Headers Timeout Error code: "
     "'UND_ERR_HEADERS_TIMEOUT'", ["slow-model-load", "high-latency"]),
    ("httpx.ConnectError: [SSL: WRONG_VERSION_NUMBER] wrong version number",
     ["wrong-port-scheme"]),
    ('Error: Head "https://localhost:11434/": http: server gave HTTP response to HTTPS client',
     ["wrong-port-scheme"]),
    ("ssl.SSLCertVerificationError: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify "
     "failed: unable to get local issuer certificate", ["tls-error"]),
    ("ollama._types.ResponseError: Server error '502 Bad Gateway' for url "
     "'http://127.0.0.1:11434/api/chat'", ["proxy-captures-local", "bad-gateway"]),
    ("httpx.HTTPStatusError: Server error '500 Internal Privoxy Error' for url "
     "'http://localhost:11434/api/chat'", ["proxy-captures-local", "proxy-blocks"]),
    ("File \"httpcore/_sync/http_proxy.py\", line 288\nhttpcore.RemoteProtocolError: Server "
     "disconnected without sending a response.",
     ["proxy-captures-local", "proxy-blocks", "proxy-unreachable"]),
    ("ImportError: Using SOCKS proxy, but the 'socksio' package is not installed. Make sure "
     "to install httpx using `pip install httpx[socks]`.", ["proxy-unsupported"]),
    ("ValueError: Unknown scheme for proxy URL URL('socks5h://127.0.0.1:1080')",
     ["proxy-unsupported"]),
    ("json.decoder.JSONDecodeError: Expecting value: line 1 column 1 (char 0)", ["not-ollama"]),
    ("ollama._types.ResponseError: 404 page not found (status code: 404)", ["wrong-base-path"]),
    ("openai.NotFoundError: 404 page not found", ["wrong-base-path"]),
    ("ollama._types.ResponseError: model 'llama3.1' not found (status code: 404)",
     ["model-not-found", "wrong-instance"]),
    ("openai.NotFoundError: Error code: 404 - {'error': {'message': 'model \"gpt-4o-2024-11-20\""
     " not found, try pulling it first', 'type': 'api_error'}}",
     ["model-not-found", "wrong-instance"]),
    ("ollama._types.ResponseError: registry.ollama.ai/library/dolphin-mistral:latest does not "
     "support tools (status code: 400)", ["model-capability"]),
    # Ollama's own 403s are empty; Python clients send no Origin, so the Host check leads
    ("ollama._types.ResponseError:  (status code: 403)", ["host-forbidden", "origin-forbidden"]),
    ("Access to fetch at 'http://127.0.0.1:11434/api/generate' from origin 'app://obsidian.md' "
     "has been blocked by CORS policy: Response to preflight request doesn't pass access "
     "control check", ["origin-forbidden", "host-forbidden"]),
    ("Error: something went wrong, please see the ollama server logs for details",
     ["host-forbidden", "origin-forbidden"]),
    ("ollama._types.ResponseError:  (status code: 401)", ["auth-required"]),
    ("ResponseError: unauthorized (status code: 401) signin_url", ["cloud-signin-required"]),
    ("You need to be signed in to Ollama to run Cloud models.", ["cloud-signin-required"]),
    ("ResponseError: you (alice) have reached your session usage limit, upgrade for higher "
     "limits: https://ollama.com/upgrade (status code: 429)", ["rate-limited"]),
    ("openai.RateLimitError: Error code: 429", ["rate-limited"]),
    ("ollama._types.ResponseError: server busy, please try again.  maximum pending requests "
     "exceeded (status code: 503)", ["server-busy"]),
    ("Error: llama runner process has terminated: exit status 2",
     ["runner-crashed", "out-of-memory"]),
    ("ResponseError: llama-server process has terminated: exit status 2 (status code: 500)",
     ["runner-crashed", "out-of-memory"]),
    ("model runner has unexpectedly stopped, this may be due to resource limitations or an "
     "internal error, check ollama server logs for details", ["runner-crashed", "out-of-memory"]),
    ("ollama._types.ResponseError: model requires more system memory (39.4 GiB) than is "
     "available (30.0 GiB) (status code: 500)", ["out-of-memory", "memory-limit"]),
    ("cudaMalloc failed: out of memory", ["out-of-memory", "memory-limit"]),
    ("<html><head><title>504 Gateway Time-out</title></head></html>", ["gateway-timeout"]),
    ("ollama._types.ResponseError: <html><title>502 Bad Gateway</title></html> "
     "(status code: 502)", ["bad-gateway", "proxy-captures-local"]),
    ("Error: 500 Internal Server Error: llama-server process has terminated: exit status 1: "
     "error loading model: unknown model architecture: 'mllama'",
     ["ollama-outdated", "runner-crashed"]),
    ("unknown model architecture: 'qwen3'", ["ollama-outdated"]),
    ("http: Accept error: accept tcp [::]:11434: accept4: too many open files; retrying in 5ms",
     ["fd-limit-low"]),
]


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[c[0][:50] for c in CASES])
def test_candidates_most_likely_first(text: str, expected: list[str]) -> None:
    analysis = analyse(text)
    assert analysis.recognised
    assert analysis.causes[: len(expected)] == expected


def test_unrecognised_text_is_said_plainly() -> None:
    analysis = analyse("something odd happened")
    assert not analysis.recognised
    assert analysis.candidates == []


@pytest.mark.parametrize(("text", "extracted"), [
    ("ollama._types.ResponseError: Server error '502 Bad Gateway' for url "
     "'http://127.0.0.1:11434/api/chat'",
     {"url": "http://127.0.0.1:11434", "host": "127.0.0.1", "port": 11434, "scheme": "http",
      "path": "/api/chat", "status": 502, "target_from": "request-url"}),
    ("HTTPConnectionPool(host='0.0.0.0', port=11434): Max retries exceeded",
     {"host": "0.0.0.0", "port": 11434, "target_from": "address"}),
    ("connect ECONNREFUSED 172.17.0.1:11434",
     {"host": "172.17.0.1", "port": 11434, "target_from": "address"}),
    ("model 'llama3.1' not found (status code: 404)", {"model": "llama3.1", "status": 404}),
    ("Ollama request timed out after 30 seconds", {"elapsed_s": 30.0}),
    ("ReadTimeout: HTTPConnectionPool(host='gpu', port=11434): Read timed out. "
     "(read timeout=60)", {"host": "gpu", "port": 11434, "target_from": "address",
                           "client_timeout": 60.0, "elapsed_s": 60.0}),
    ("File \"httpcore/_sync/http_proxy.py\"\nProxyError", {"through_proxy": True}),
])
def test_extracts_facts(text: str, extracted: dict[str, object]) -> None:
    assert analyse(text).extracted == extracted


def test_target_from_extracted() -> None:
    assert target_from({"url": "http://gpu:11434"}) == "http://gpu:11434"
    assert target_from({"host": "::1", "port": 11434}) == "[::1]:11434"
    assert target_from({"host": "ollama.lan"}) == "ollama.lan"  # OLLAMA_HOST rules: :11434
    assert target_from({"status": 500}) is None


DOWNLOAD = ("ConnectionError: Failed to connect to Ollama. Please check that Ollama is "
            "downloaded, running and accessible. https://ollama.com/download")
SQUID = ('<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01//EN" "http://www.w3.org/TR/html4/'
         'strict.dtd">\n<html><head><title>ERROR: The requested URL could not be retrieved'
         '</title></head><body><a href="http://www.squid-cache.org/">squid</a></body></html>')


@pytest.mark.parametrize(("text", "target"), [
    # where a client prints the request URL or address: that is the server
    ("httpx.HTTPStatusError: Client error '403 Forbidden' for url "
     "'http://localhost:11434/api/chat'\nFor more information check: "
     "https://developer.mozilla.org/en-US/docs/Web/HTTP/Status/403", "http://localhost:11434"),
    ("requests.exceptions.HTTPError: 502 Server Error: Bad Gateway for url: "
     "http://ollama.example.com/api/chat", "http://ollama.example.com:80"),
    ("requests.exceptions.ProxyError: HTTPConnectionPool(host='127.0.0.1', port=3128): Max "
     "retries exceeded with url: http://localhost:11434/api/chat (Caused by ProxyError("
     "'Unable to connect to proxy', NewConnectionError(\"HTTPConnection(host='127.0.0.1', "
     "port=3128): Failed to establish a new connection: [Errno 111] Connection refused\")))",
     "http://localhost:11434"),
    ("requests.exceptions.ConnectionError: HTTPConnectionPool(host='ollama.lan', port=11434): "
     "Max retries exceeded with url: /api/chat", "ollama.lan:11434"),
    ("curl: (7) Failed to connect to localhost port 11434 after 0 ms: Couldn't connect to "
     "server", "localhost:11434"),
    ("  [cause]: Error: connect ECONNREFUSED ::1:11434\n    address: '::1',\n    port: 11434",
     "[::1]:11434"),
    ("Error: Post \"http://10.0.0.5:11434/api/chat\": dial tcp 10.0.0.5:11434: connect: "
     "connection refused", "http://10.0.0.5:11434"),
    ('Error: Post "http://gpu.lan:11434/api/chat": dial tcp: lookup gpu.lan on '
     "127.0.0.53:53: no such host", "http://gpu.lan:11434"),
    ("  [cause]: Error: getaddrinfo ENOTFOUND ollama.lan", "ollama.lan"),
    ("curl: (6) Could not resolve host: ollama.lan", "ollama.lan"),
    ("aiohttp.client_exceptions.ClientConnectorError: Cannot connect to host "
     "host.docker.internal:11434 ssl:default [Connect call failed ('172.17.0.1', 11434)]",
     "host.docker.internal:11434"),
    ("  [cause]: ConnectTimeoutError: Connect Timeout Error (attempted address: "
     "127.0.0.1:11434, timeout: 10000ms)", "127.0.0.1:11434"),
    # the app's source line in the traceback
    ('  File "app.py", line 3, in <module>\n    c = Client(host="http://gpu:11434")\n'
     + DOWNLOAD, "http://gpu:11434"),
    ('    r = requests.post("http://10.1.2.3:8080/api/chat", json={"model": "m"})\n'
     "requests.exceptions.HTTPError: 404 Client Error", "http://10.1.2.3:8080"),
    ('    client = OpenAI(base_url="http://localhost:11434/v1", api_key="x")\n'
     "openai.APIConnectionError: Connection error.", "http://localhost:11434"),
    ("OLLAMA_HOST=0.0.0.0:11434 python app.py\n" + DOWNLOAD, "0.0.0.0:11434"),
    # a URL with credentials gives its host and port, never the user name
    ("httpx.ConnectError: [Errno 111] Connection refused for url "
     "'http://alice:s3cret@gpu.lan:11500/api/chat'", "http://gpu.lan:11500"),
    # never a download link, a DTD or docs link in a page, a help link, or a proxy
    (DOWNLOAD, None),
    ("ollama._types.ResponseError: " + SQUID + " (status code: 403)", None),
    ("pydantic_core._pydantic_core.ValidationError: 1 validation error for ChatResponse\n"
     "message\n  Field required [type=missing, input_value={'status': 'ok'}, "
     "input_type=dict]\n    For further information visit "
     "https://errors.pydantic.dev/2.11/v/missing", None),
    ("curl: (7) Failed to connect to 127.0.0.1 port 3128 after 0 ms: Couldn't connect to "
     "server", None),
    ('{"error":"unauthorized","signin_url":"https://ollama.com/connect?name=vm&key=abc"}', None),
])
def test_target_only_from_where_the_client_prints_it(text: str, target: str | None) -> None:
    assert target_from(analyse(text).extracted) == target


def test_base_path_is_not_another_server() -> None:
    facts = analyse("httpx.HTTPStatusError: Client error '404 Not Found' for url "
                    "'http://localhost:11434/v1/api/chat'").extracted
    assert (facts["url"], facts["path"]) == ("http://localhost:11434", "/v1/api/chat")
    assert analyse("openai.NotFoundError: x for url 'http://h:1/v1/api/chat'").causes[0] == \
        "wrong-base-path"


def test_credentials_never_reach_the_facts() -> None:
    analysis = analyse("for url 'http://alice:s3cret@gpu.lan:11500/api/chat'")
    assert "s3cret" not in str(analysis.extracted)
    assert "s3cret" not in str(analysis.to_dict())


@pytest.mark.parametrize(("text", "client"), [
    ("ollama._types.ResponseError:  (status code: 403)", "ollama-python"),
    ('  File "/v/site-packages/ollama/_client.py", line 149, in _request_raw\n'
     '  File "/v/site-packages/httpx/_client.py", line 1014\nhttpx.ReadTimeout: timed out',
     "ollama-python"),
    ('  File "/v/site-packages/langchain_ollama/chat_models.py", line 1122\n'
     '  File "/v/site-packages/ollama/_client.py", line 188\nhttpx.ConnectError: x',
     "langchain-ollama"),
    ("openai.APIConnectionError: Connection error.", "openai-python"),
    ("    at async file:///app/node_modules/ollama/dist/browser.mjs:150:20", "ollama-js"),
    ("APIConnectionError: Connection error.\n    at OpenAI.makeRequest "
     "(file:///app/node_modules/openai/client.mjs:932:19)", "openai-node"),
    ("TypeError: fetch failed\n  [cause]: Error: connect ECONNREFUSED 127.0.0.1:11434",
     "ollama-js"),
    ("requests.exceptions.HTTPError: 404 Client Error: Not Found for url: http://h/api/chat",
     "requests"),
    ('  File "/v/site-packages/httpx/_client.py"\nhttpx.ConnectError: [Errno 111]', "httpx"),
    ("curl: (22) The requested URL returned error: 404", "curl"),
    # an app crash: the answer's shape says which client the code used
    ("Traceback (most recent call last):\n    print(response.choices[0].message.content)\n"
     "AttributeError: 'str' object has no attribute 'choices'", "openai-python"),
    ("file:///app/app.mjs:5\nconsole.log(response.choices[0].message.content);\n"
     "TypeError: Cannot read properties of undefined (reading '0')", "openai-node"),
    ('{"status": "ok", "service": "inventory-api"}', "curl"),
    ("something odd happened", None),
])
def test_client_is_named(text: str, client: str | None) -> None:
    assert analyse(text).client == client


@pytest.mark.parametrize(("text", "model", "timeout"), [
    ('    response = ollama.chat(model="llama3.2", messages=[])\nhttpx.ReadTimeout: timed out',
     "llama3.2", None),
    ('    r = ollama.Client(timeout=2).chat(model="qwen3:8b", messages=[])\n'
     "httpx.ReadTimeout: timed out", "qwen3:8b", 2.0),
    ("const r = await ollama.chat({ model: 'llama3.2', messages })\nTimeoutError", "llama3.2",
     None),
    ("const client = new OpenAI({ apiKey: 'ollama', timeout: 2000 });\n"
     "APIConnectionTimeoutError: Request timed out.", None, 2.0),
    # the server's own message names the model: it wins over the source line
    ("    c.chat(model=\"other\")\nResponseError: model 'llama3.1' not found (status code: "
     "404)", "llama3.1", None),
])
def test_model_and_timeout_from_the_source_line(text: str, model: str | None,
                                               timeout: float | None) -> None:
    facts = analyse(text).extracted
    assert facts.get("model") == model
    assert facts.get("client_timeout") == timeout


@pytest.mark.parametrize(("text", "first"), [
    # a 403 with an HTML page is a proxy; empty, Ollama's own check
    ("ollama._types.ResponseError: " + SQUID + " (status code: 403)", "proxy-captures-local"),
    ("requests.exceptions.HTTPError: 403 Client Error: Forbidden for url: "
     "http://ollama.corp.example:11434/api/chat\n" + SQUID, "proxy-blocks"),
    ("httpx.HTTPStatusError: Client error '403 Forbidden' for url "
     "'http://localhost:11434/api/chat'", "proxy-captures-local"),  # localhost passes Host
    ("requests.exceptions.HTTPError: 403 Client Error: Forbidden for url: "
     "http://ollama.example.com/api/chat", "host-forbidden"),
    ("curl: (22) The requested URL returned error: 403\n", "host-forbidden"),
    # a reset right after the request, through a proxy, is the proxy
    ('  File "/v/httpcore/_sync/http_proxy.py", line 343\nhttpx.ReadError: [Errno 104] '
     "Connection reset by peer", "proxy-captures-local"),
    ("openai.PermissionDeniedError: Error code: 403", "host-forbidden"),
    ("openai.RateLimitError: Error code: 429 - {'error': {'message': 'rate limit exceeded'}}",
     "rate-limited"),
    ("openai.AuthenticationError: Error code: 401", "auth-required"),
    ("openai.InternalServerError: Error code: 500 - {'error': {'message': 'llama-server "
     "process has terminated: exit status 2'}}", "runner-crashed"),
    ("openai.BadRequestError: Error code: 400 - {'error': {'message': '\"m\" does not "
     "support tools'}}", "model-capability"),
    # Ollama's missing model is a JSON error openai prints; nothing after the status: the path
    ("openai.NotFoundError: Error code: 404", "wrong-base-path"),
    ("openai.NotFoundError: Error code: 404 - model 'llama3.2' not found", "model-not-found"),
    ("openai.APITimeoutError: Request timed out.", "slow-model-load"),
    ("requests.exceptions.HTTPError: 429 Client Error: Too Many Requests for url: "
     "http://localhost:11434/api/chat", "rate-limited"),
    ("requests.exceptions.HTTPError: 503 Server Error: Service Unavailable for url: "
     "http://localhost:11434/api/chat", "server-busy"),
    ("requests.exceptions.HTTPError: 504 Server Error: Gateway Timeout for url: "
     "http://ollama.example.com/api/chat", "gateway-timeout"),
    ("requests.exceptions.HTTPError: 502 Server Error: Bad Gateway for url: "
     "http://localhost:11434/api/chat", "proxy-captures-local"),
    ("requests.exceptions.HTTPError: 401 Client Error: Unauthorized for url: "
     "http://localhost:11434/api/chat", "auth-required"),
    ('    r = requests.post("http://h:11434/api/chat", json={"model": "gpt-oss:120b-cloud"})\n'
     "requests.exceptions.HTTPError: 401 Client Error: Unauthorized for url: "
     "http://h:11434/api/chat", "cloud-signin-required"),
    ("curl: (56) Recv failure: Connection reset by peer", "proxy-captures-local"),
    ("curl: (52) Empty reply from server", "proxy-captures-local"),
    ("curl: (35) OpenSSL/3.0.13: error:0A00010B:SSL routines::wrong version number",
     "wrong-port-scheme"),
    ("curl: (28) Failed to connect to 10.0.0.5 port 11434 after 2002 ms: Timeout was reached",
     "connect-timeout"),
    ("curl: (28) Operation timed out after 3001 milliseconds with 0 bytes received",
     "slow-model-load"),
    ("curl: (7) Failed to connect to 127.0.0.1 port 3128 after 0 ms: Couldn't connect to "
     "server", "proxy-unreachable"),
    ("  [cause]: Error: getaddrinfo EAI_AGAIN ollama.lan", "dns-failure"),
    ("  [cause]: ConnectTimeoutError: Connect Timeout Error (attempted address: "
     "127.0.0.1:11434, timeout: 10000ms)\n  code: 'UND_ERR_CONNECT_TIMEOUT'", "connect-timeout"),
    ("DOMException [TimeoutError]: The operation was aborted due to timeout",
     "slow-model-load"),
    # both loopback families refused: nothing listens (not the IPv6 mix-up)
    ("Error: connect ECONNREFUSED ::1:11434\nError: connect ECONNREFUSED 127.0.0.1:11434",
     "server-not-running"),
    # an app crash on an answer that is not Ollama's
    ("KeyError: 'message'", "not-ollama"),
    ("AttributeError: 'str' object has no attribute 'choices'", "not-ollama"),
    ("pydantic_core._pydantic_core.ValidationError: 1 validation error for ChatResponse\n"
     "message\n  Field required [type=missing]", "not-ollama"),
    ("TypeError: Cannot read properties of undefined (reading '0')", "not-ollama"),
    ("<!DOCTYPE html>\n<html><body><h1>Welcome to nginx!</h1></body></html>", "not-ollama"),
    ('{"status": "ok", "service": "inventory-api", "version": "2.4.1"}', "not-ollama"),
    # a streamed line without the answer in it: Ollama's {"error": …} line mid-stream
    ('HelloTraceback (most recent call last):\n    print(json.loads(line)["message"]'
     '["content"])\nKeyError: \'message\'', "runner-crashed"),
])
def test_client_formats(text: str, first: str) -> None:
    assert analyse(text).causes[0] == first


@pytest.mark.parametrize(("text", "first", "absent"), [
    # a name makes DNS likelier, an IP literal rules it out
    ('    Client(host="http://ollama.lan:11434")\n' + DOWNLOAD, "dns-failure", None),
    ('    Client(host="http://10.0.0.5:11434")\n' + DOWNLOAD, "server-not-running",
     "dns-failure"),
    ('    Client(host="https://localhost:11434")\n' + DOWNLOAD, "wrong-port-scheme", None),
    ('    Client(host="http://gpu")\n' + DOWNLOAD, "wrong-port-scheme", None),  # port 80
])
def test_a_bare_connection_failure_is_ordered_by_the_host_it_shows(
        text: str, first: str, absent: str | None) -> None:
    causes = analyse(text).causes
    assert causes[0] == first
    assert absent is None or absent not in causes


def test_confidence_follows_how_many_causes_the_text_allows() -> None:
    assert analyse("openai.RateLimitError: Error code: 429").confidence == "high"
    assert analyse("ollama._types.ResponseError:  (status code: 403)").confidence == "low"
    assert analyse(DOWNLOAD).confidence == "low"
    assert analyse("something odd").confidence == "low"


ADVERSARIAL = ["http://", "host='", "[::", "model '", "{", "a" * 50 + " "]


@pytest.mark.parametrize("piece", ADVERSARIAL)
def test_reading_is_linear_in_the_text(piece: str) -> None:
    """A pasted megabyte costs a bounded multiple of 4 KB: no regex backtracks over the text
    at each position (analyse reads at most HEAD + TAIL = 64 KiB of it: 16x 4 KiB if linear,
    256x if quadratic)."""
    def cost(size: int, runs: int) -> float:
        text = (piece * (size // len(piece) + 1))[:size]
        best = float("inf")
        for _ in range(runs):
            start = time.perf_counter()
            analyse(text)
            best = min(best, time.perf_counter() - start)
        return best

    small, big = cost(4 * 1024, 3), cost(1024 * 1024, 1)
    assert big < 64 * small + 0.05, (piece, small, big)


@pytest.mark.parametrize(("text", "reason", "first"), [
    # tinyproxy in front of localhost, as httpx and requests print it (seen in the real-client
    # tier on a busy machine: tinyproxy answered before the client's read failed)
    ("httpx.HTTPStatusError: Server error '500 Unable to connect' for url "
     "'http://localhost:11434/api/chat'", "Unable to connect", "proxy-captures-local"),
    ("requests.exceptions.HTTPError: 500 Server Error: Unable to connect for url: "
     "http://127.0.0.1:11434/api/chat", "Unable to connect", "proxy-captures-local"),
    # Go's own phrase: Ollama may have written it
    ("httpx.HTTPStatusError: Server error '500 Internal Server Error' for url "
     "'http://localhost:11434/api/chat'", None, "server-error"),
    # nginx's phrase for 504 on a remote target: still a gateway timeout
    ("httpx.HTTPStatusError: Server error '504 Gateway Time-out' for url "
     "'http://ollama.example.com/api/chat'", "Gateway Time-out", "gateway-timeout"),
])
def test_a_reason_phrase_go_never_writes_is_an_intermediary(text: str, reason: str | None,
                                                             first: str) -> None:
    analysis = analyse(text)
    assert analysis.extracted.get("foreign_reason") == reason
    assert analysis.causes[0] == first
