"""Pasted client errors → candidate causes (failure-modes.md §2 and its closing table)."""

from __future__ import annotations

import pytest

from ollama_doctor.errortext import REFUSED, analyse, target_from

# (what the user pasted, the candidates the table names, most likely first)
CASES = [
    ("ConnectionError: Failed to connect to Ollama. Please check that Ollama is downloaded, "
     "running and accessible. https://ollama.com/download", list(REFUSED)),
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
    ("Error: could not connect to ollama app, is it running?", list(REFUSED)),
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
     "'http://localhost:11434/api/chat'",
     ["proxy-captures-local", "proxy-blocks", "proxy-unreachable"]),
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
    ("ollama._types.ResponseError:  (status code: 403)", ["origin-forbidden", "host-forbidden"]),
    ("Access to fetch at 'http://127.0.0.1:11434/api/generate' from origin 'app://obsidian.md' "
     "has been blocked by CORS policy: Response to preflight request doesn't pass access "
     "control check", ["origin-forbidden", "host-forbidden"]),
    ("Error: something went wrong, please see the ollama server logs for details",
     ["origin-forbidden", "host-forbidden"]),
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
      "path": "/api/chat", "status": 502}),
    ("HTTPConnectionPool(host='0.0.0.0', port=11434): Max retries exceeded",
     {"host": "0.0.0.0", "port": 11434}),
    ("connect ECONNREFUSED 172.17.0.1:11434", {"host": "172.17.0.1", "port": 11434}),
    ("model 'llama3.1' not found (status code: 404)", {"model": "llama3.1", "status": 404}),
    ("Ollama request timed out after 30 seconds", {"elapsed_s": 30.0}),
    ("ReadTimeout: HTTPConnectionPool(host='gpu', port=11434): Read timed out. "
     "(read timeout=60)", {"host": "gpu", "port": 11434, "elapsed_s": 60.0}),
    ("File \"httpcore/_sync/http_proxy.py\"\nProxyError", {"through_proxy": True}),
])
def test_extracts_facts(text: str, extracted: dict[str, object]) -> None:
    assert analyse(text).extracted == extracted


def test_target_from_extracted() -> None:
    assert target_from({"url": "http://gpu:11434"}) == "http://gpu:11434"
    assert target_from({"host": "::1", "port": 11434}) == "[::1]:11434"
    assert target_from({"status": 500}) is None


def test_client_is_named() -> None:
    assert analyse("ollama._types.ResponseError:  (status code: 403)").client == "ollama-python"
    assert analyse("TypeError: fetch failed cause: ECONNREFUSED ::1:11434").client == "node"
    assert analyse("openai.APIConnectionError: Connection error.").client == "openai-python"
