"""The warmup probe: its deciders as tables, then end to end against the emulator."""

from __future__ import annotations

import contextlib
import json
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from ollama_doctor import net
from ollama_doctor.context import Context, Options
from ollama_doctor.probes import warmup
from ollama_doctor.probes.warmup import (
    classify_server_error,
    clients_timing_out,
    cpu_percent,
    find_ps_entry,
    is_truncated,
    keep_alive_for,
    parse_rfc3339,
    processor,
    recommended_timeout,
)
from ollama_doctor.result import Status
from ollama_doctor.target import parse_target

# ---------------------------------------------------------------------------------------------
# classify_server_error


@pytest.mark.parametrize(("status", "message", "cause"), [
    # runner crashes, old (≤ v0.24) and new (v0.30+) wording, during load and mid-request
    (500, "llama runner process has terminated: exit status 2", "runner-crashed"),
    (500, "llama runner process has terminated: exit status 0xc0000409", "runner-crashed"),
    (500, "llama-server process has terminated: exit status 1: error loading model",
     "runner-crashed"),
    (500, "llama runner process no longer running: 1 error", "runner-crashed"),
    (500, "llama-server process no longer running: exit status 2 ", "runner-crashed"),
    (None, "model runner has unexpectedly stopped, this may be due to resource limitations or "
           "an internal error, check ollama server logs for details", "runner-crashed"),
    # out of memory: llm/status.go substrings and the loaders' own sentences
    (500, "model requires more system memory (39.4 GiB) than is available (30.0 GiB)",
     "out-of-memory"),
    (500, "model requires 12.0 GiB but only 7.5 GiB are available (after 1 GiB overhead)",
     "out-of-memory"),
    (500, "llama runner process has terminated: CUDA error: out of memory", "out-of-memory"),
    (500, "llama-server process has terminated: signal: killed", "out-of-memory"),
    (500, "llama-server reported out-of-memory during startup: cudaMalloc failed",
     "out-of-memory"),
    (500, "hipMalloc failed: out of device memory", "out-of-memory"),
    (500, "ggml: failed to allocate buffer", "out-of-memory"),
    (500, "Insufficient Memory for KV cache", "out-of-memory"),
    (500, "VK_ERROR_OUT_OF_DEVICE_MEMORY", "out-of-memory"),
    (500, "mlx: ErrorOutOfMemory", "out-of-memory"),
    # the server's own load timeout, both wordings
    (500, "timed out waiting for llama runner to start - progress 0.00 - ", "slow-model-load"),
    (500, "timed out waiting for llama-server to start - last error", "slow-model-load"),
    # queue full: the exact message with its two spaces, and a bare 503
    (503, "server busy, please try again.  maximum pending requests exceeded", "server-busy"),
    (503, "Service Unavailable", "server-busy"),
    # capability, too old, truncation rejection, not found
    (400, "\"nomic-embed-text\" does not support generate", "model-capability"),
    (400, "registry.ollama.ai/library/dolphin-mistral:latest does not support tools",
     "model-capability"),
    (500, "error loading model: unknown model architecture: 'qwen3'", "ollama-outdated"),
    (400, "the prompt is longer than the context length currently available to the model; "
          "shorten the prompt", "prompt-truncated"),
    (404, "model 'llama3.1' not found", "model-not-found"),
    (404, "model \"x\" not found, try pulling it first", "model-not-found"),
    (404, "404 page not found", "wrong-base-path"),
    # everything else by status
    (None, "an error was encountered while running the model: unexpected EOF", "runner-crashed"),
    (500, "", "server-error"),
    (None, "something odd", "server-error"),
    (-1, "something odd", "server-error"),
    (429, "Too Many Requests", "rate-limited"),
    (401, "unauthorized", "auth-required"),
    (401, '{"error":"unauthorized","signin_url":"https://ollama.com/connect"}',
     "cloud-signin-required"),
    (400, "time: missing unit in duration \"300\"", "bad-request"),
    (418, "teapot", "bad-request"),
    (502, "<html>502 Bad Gateway</html>", "bad-gateway"),
    (504, "<html>504 Gateway Time-out</html>", "gateway-timeout"),
])
def test_classify_server_error(status: int | None, message: str, cause: str) -> None:
    assert classify_server_error(status, message) == cause


def test_classifier_causes_exist_in_the_catalogue() -> None:
    from ollama_doctor.causes import CAUSES
    from ollama_doctor.ollama_messages import MESSAGES

    table = {row.cause for row in MESSAGES} | set(warmup._STATUS_CAUSES.values())
    assert table | {"server-error", "wrong-base-path"} <= set(CAUSES)


# ---------------------------------------------------------------------------------------------
# timeouts


@pytest.mark.parametrize(("load_s", "expected"), [
    (24.0, 30),  # the troubleshooting guide's case study: 1.25 × 24 = 30 exactly
    (24.1, 30), (24.4, 30),  # as measured: the load counts to two significant figures
    (24.6, 45),
    (2.4, 3),  # the same, scaled down: 2.4 × 1.25 is 3.0000000000000004 in floating point
    (2.412, 3), (2.46, 5),
    (0.0, 1), (0.5, 1), (0.8, 1), (0.86, 2), (4.0, 5), (4.1, 10), (8.0, 10), (12.0, 15),
    (16.0, 20), (25.0, 45), (36.0, 45), (48.0, 60), (50.0, 90), (100.0, 180),
    (240.0, 300), (300.0, 450), (480.0, 600), (2800.0, 3600), (2880.0, 4500), (3000.0, 4500),
])
def test_recommended_timeout(load_s: float, expected: int) -> None:
    assert recommended_timeout(load_s) == expected
    assert expected >= float(f"{load_s:.2g}") * 1.25 - 1e-9


@pytest.mark.parametrize(("load_s", "families"), [
    (3.0, []),
    (24.0, ["httpx"]),
    (61.0, ["httpx", "nginx"]),
    (301.0, ["httpx", "nginx", "node-undici"]),
    (700.0, ["httpx", "nginx", "node-undici", "openai-python"]),
])
def test_client_defaults_exceeded(load_s: float, families: list[str]) -> None:
    assert [c.family for c in clients_timing_out(load_s)] == families


# ---------------------------------------------------------------------------------------------
# /api/ps


@pytest.mark.parametrize(("size", "vram", "text", "cpu"), [
    (1000, 0, "100% CPU", 100),
    (1000, 1000, "100% GPU", 0),
    (1000, 600, "40%/60% CPU/GPU", 40),
    (1000, 1, "100%/0% CPU/GPU", 100),
    (1000, 1500, "Unknown", None),
    (0, 0, "100% CPU", 100),
    (0, 10, "Unknown", None),
])
def test_processor_column(size: int, vram: int, text: str, cpu: int | None) -> None:
    assert processor(size, vram) == text
    assert cpu_percent(size, vram) == cpu


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-08-21T10:00:00Z", datetime(2026, 8, 21, 10, 0, 0, tzinfo=timezone.utc)),
    ("2026-08-21T10:00:00.123456789Z",
     datetime(2026, 8, 21, 10, 0, 0, 123456, tzinfo=timezone.utc)),
    ("2026-08-21T12:00:00.5+02:00", datetime(2026, 8, 21, 10, 0, 0, 500000, tzinfo=timezone.utc)),
    ("2318-08-21T10:00:00-07:00", datetime(2318, 8, 21, 17, 0, 0, tzinfo=timezone.utc)),
    ("yesterday", None),
    ("2026-13-40T10:00:00Z", None),
])
def test_parse_rfc3339(text: str, expected: datetime | None) -> None:
    assert parse_rfc3339(text) == expected


@pytest.mark.parametrize(("expires_in", "sent"), [
    (None, "10m"), (-5.0, "10m"), (299.0, "10m"), (600.0, "10m"), (3600.2, 3601),
    (292 * 365 * 86400.0, -1),
])
def test_keep_alive_never_shortens(expires_in: float | None, sent: str | int) -> None:
    assert keep_alive_for(expires_in) == sent


def test_find_ps_entry_uses_ollamas_name_rules() -> None:
    now = datetime(2026, 8, 21, 10, 0, 0, tzinfo=timezone.utc)
    data: dict[str, Any] = {"models": [
        "garbage",
        {"name": "qwen3:8b", "size": 5, "size_vram": 5},
        {"name": "llama3.2:latest", "model": "llama3.2:latest", "size": 2000, "size_vram": 800,
         "expires_at": (now + timedelta(minutes=4)).isoformat().replace("+00:00", "Z"),
         "context_length": 4096},
    ]}
    entry = find_ps_entry(data, "Llama3.2", now)
    assert entry is not None
    assert entry.to_dict() == {
        "name": "llama3.2:latest", "size": 2000, "size_vram": 800,
        "processor": "60%/40% CPU/GPU", "context_length": 4096,
        "expires_at": "2026-08-21T10:04:00Z", "expires_in_s": 240.0}
    assert find_ps_entry(data, "registry.ollama.ai/library/llama3.2:latest", now) is not None
    assert find_ps_entry(data, "llama3.2:1b", now) is None
    old = find_ps_entry({"models": [{"name": "qwen3:8b", "size": "x"}]}, "qwen3:8b", now)
    assert old is not None and old.context_length is None and old.size == 0
    for bad in (None, [], {"models": None}, {"models": "x"}):
        assert find_ps_entry(bad, "qwen3:8b", now) is None


def test_other_models() -> None:
    data = {"models": [{"name": "llama3.2:latest"}, {"name": "qwen3:8b"}, {"name": "qwen3:8b"},
                       {"model": "x"}, "junk"]}
    assert warmup.other_models(data, "llama3.2") == ["qwen3:8b"]
    assert warmup.other_models(None, "llama3.2") == []


@pytest.mark.parametrize(("count", "ctx", "cut"), [
    (4096, 4096, True), (2048, 4096, True), (4300, 4096, True), (6144, 4096, False),
    (0, 4096, False), (7000, 4096, False),
])
def test_is_truncated(count: int, ctx: int, cut: bool) -> None:
    assert is_truncated(count, ctx) is cut


def test_truncation_cost_and_prompt() -> None:
    assert warmup.truncation_cost_s(4096, 8, 0.004) == pytest.approx(2.048)
    assert warmup.truncation_cost_s(4096, 0, 0.0) == float("inf")
    words = warmup.long_prompt(100).split()
    assert len(words) == 100 and words[0] == "alpha" and words[16] == "alpha"


# ---------------------------------------------------------------------------------------------
# deciders that need a run's state (no network)


def _bare_run(**options: Any) -> warmup._Run:
    from ollama_doctor.context import Context, Options
    from ollama_doctor.target import parse_target

    ctx = Context(target=parse_target("http://127.0.0.1:11434"), options=Options(**options))
    run = warmup._Run(ctx, "llama3.2", "http://127.0.0.1:11434", {}, client=None)
    run.facts["load_kind"] = "cold"
    return run


def test_guides_case_study_24s_load_against_10s_timeout() -> None:
    """The troubleshooting guide's numbers: a 24 s first load, a client that waits 10 s."""
    run = _bare_run(model="llama3.2", client_timeout=10.0)
    warmup._judge_load_time(run, 24.0)
    (finding,) = run.findings
    assert (finding.cause, finding.severity.value, finding.code) == ("slow-model-load", "error",
                                                                     None)
    assert finding.message == (
        "A cold load of llama3.2 takes 24.0 s, longer than the client's 10 s timeout. Retrying "
        "with the same timeout cannot succeed: each time the client hangs up, Ollama aborts "
        "the load.")
    assert finding.evidence == {"load_s": 24.0, "client_timeout_s": 10.0,
                                "recommended_timeout_s": 30}
    raise_it, in_proxy, preload, keep_all, stream = finding.fix
    assert raise_it.text.startswith("Raise the client's timeout to at least 30 s")
    assert "ollama.Client(host='http://127.0.0.1:11434', timeout=30)" in raise_it.commands
    assert (raise_it.kind, in_proxy.kind, keep_all.kind) == ("python", "nginx", "env")
    assert preload.commands[0] == ("curl http://127.0.0.1:11434/api/generate -d "
                                   "'{\"model\": \"llama3.2\", \"keep_alive\": -1}'")
    assert stream.text.startswith("Stream responses")


@pytest.mark.parametrize(("load_s", "families", "finding"), [
    (3.0, [], False),
    (24.0, ["httpx"], True),
    (70.0, ["httpx", "nginx"], True),
])
def test_unknown_client_timeout_names_the_defaults_exceeded(
        load_s: float, families: list[str], finding: bool) -> None:
    run = _bare_run()
    warmup._judge_load_time(run, load_s)
    assert run.facts["client_timeout"]["defaults_exceeded"] == families
    assert bool(run.findings) is finding
    if finding:
        (f,) = run.findings
        assert (f.cause, f.severity.value, f.confidence.value) == ("slow-model-load", "warning",
                                                                   "medium")
        assert [d["family"] for d in f.evidence["defaults_exceeded"]] == families


def test_close_to_the_client_timeout_is_a_warning() -> None:
    run = _bare_run(client_timeout=10.0)
    warmup._judge_load_time(run, 9.0)
    assert [(f.cause, f.severity.value) for f in run.findings] == [("slow-model-load",
                                                                    "warning")]
    run = _bare_run(client_timeout=10.0)
    warmup._judge_load_time(run, 5.0)
    assert run.findings == []


def _ps(ctx_len: int) -> warmup.PsEntry:
    return warmup.PsEntry("llama3.2:latest", 10, 10, ctx_len, None, None)


@pytest.mark.parametrize(("kind", "warm_ms", "before", "after", "expected"), [
    # two identical warm calls that both reload: something reloads between calls
    ("warm", [2400.0, 2300.0], 4096, 4096, ("warning", "high", "Two identical")),
    # loaded with other options; a default call reloaded it and the context changed
    ("reload", [2.0, 2.0], 8192, 4096, ("warning", "high", "was loaded, yet")),
    ("reload", [2.0, 2.0], 4096, 4096, ("warning", "medium", "was loaded, yet")),
    # one warm call reloaded
    ("warm", [2.0, 900.0], 4096, 4096, ("warning", "medium", "A warm call")),
    # healthy: a few ms each
    ("warm", [2.1, 2.2], 4096, 4096, None),
    ("cold", [2.1, 2.2], None, 4096, None),
])
def test_reload_churn(kind: str, warm_ms: list[float], before: int | None, after: int,
                      expected: tuple[str, str, str] | None) -> None:
    run = _bare_run()
    run.facts["load_kind"] = kind
    calls = [{"load_duration_ms": ms} for ms in warm_ms]
    warmup._judge_churn(run, _ps(before) if before else None, _ps(after), 2.4, calls)
    if expected is None:
        assert run.findings == []
        return
    (finding,) = run.findings
    assert (finding.cause, finding.severity.value, finding.confidence.value) == (
        "reload-churn", *expected[:2])
    assert expected[2] in finding.message


# ---------------------------------------------------------------------------------------------
# end to end: the real CLI against the emulator

FAST = 0.01  # emulator time scale: token and prompt delays shrink to almost nothing


def _top(run: Any) -> dict[str, Any]:
    doc = run.json()
    assert doc["diagnosis"], doc["checks"]
    top: dict[str, Any] = doc["diagnosis"][0]
    return top


def _check(doc: dict[str, Any], probe_id: str = "warmup") -> dict[str, Any]:
    (check,) = [c for c in doc["checks"] if c["id"] == probe_id]
    return dict(check)


def _never_pulled(emu: Any) -> None:
    assert not [r for r in emu.requests if r.path == "/api/pull"]


def test_s16_cold_load_longer_than_client_timeout(emulator: Any, cli: Any) -> None:
    # The guide's 24 s load against a 10 s timeout, scaled by 0.1: 2.4 s against 1 s.
    emu = emulator(time_scale=0.1, cold_load="24")
    run = cli("probe", "warmup", "--host", emu.url, "-m", "llama3.2", "--client-timeout", "1",
              "--json")
    assert run.code == 1, run.stderr
    top = _top(run)
    assert (top["cause"], top["code"], top["severity"]) == ("slow-model-load", 504, "error")
    assert top["evidence"]["recommended_timeout_s"] == 3  # 1.25 × 2.4 s
    assert 2.4 <= top["evidence"]["load_s"] < 2.4 * 1.05
    assert top["retry"]["helps"] is False
    assert "Retrying with the same timeout cannot succeed" in top["explanation"]
    commands = [c for step in top["fix"] for c in step["commands"]]
    assert f"ollama.Client(host='{emu.url}', timeout=3)" in commands
    assert (f"curl {emu.url}/api/generate -d '{{\"model\": \"llama3.2\", \"keep_alive\": -1}}'"
            in commands)
    check = _check(run.json())
    assert check["facts"]["load_kind"] == "cold" and check["facts"]["loaded_before"] is False
    _never_pulled(emu)


def test_model_already_warm_is_healthy(emulator: Any, cli: Any) -> None:
    import httpx

    emu = emulator(time_scale=FAST)
    httpx.post(emu.url + "/api/generate", json={"model": "llama3.2", "keep_alive": "1h"},
               timeout=10)
    run = cli("check", "--host", emu.url, "-m", "llama3.2", "--json")
    assert run.code == 0, run.stdout
    doc = run.json()
    assert not [d for d in doc["diagnosis"] if d["severity"] in ("error", "critical")]
    check = _check(doc)
    assert check["status"] == "pass"
    facts = check["facts"]
    assert facts["loaded_before"] is True and facts["load_kind"] == "warm"
    assert facts["ps_before"]["expires_in_s"] > 3000
    assert facts["keep_alive_sent"] > 3000  # the hour it had is kept, not cut to 10 minutes
    assert facts["ps"]["processor"] == "100% GPU"
    assert all(ms < 200 for ms in facts["warm_load_ms"])
    assert facts["tokens_per_s"] > 0 and facts["first_chunk_ms"] > 0
    _never_pulled(emu)


def test_cold_flag_unloads_first(emulator: Any, cli: Any) -> None:
    import httpx

    emu = emulator(time_scale=FAST)
    httpx.post(emu.url + "/api/generate", json={"model": "llama3.2"}, timeout=10)
    run = cli("probe", "warmup", "--host", emu.url, "-m", "llama3.2", "--cold", "--json")
    facts = _check(run.json())["facts"]
    assert (facts["loaded_before"], facts["unloaded"], facts["load_kind"]) == (True, True, "cold")
    unload = [json.loads(r.body) for r in emu.requests if r.path == "/api/generate"
              and json.loads(r.body).get("keep_alive") == 0]
    assert unload == [{"model": "llama3.2", "prompt": "", "stream": False, "keep_alive": 0}]


def test_no_model_skips(emulator: Any, cli: Any) -> None:
    emu = emulator()
    run = cli("probe", "warmup", "--host", emu.url, "--json")
    assert run.code == 0
    check = _check(run.json())
    assert check["status"] == "skip"
    assert "no model given" in check["summary"] and "never pulls" in check["summary"]
    assert not [r for r in emu.requests if r.path in ("/api/generate", "/api/pull")]


CLOUD = "gpt-oss:120b-cloud"


def _cloud_calls(emu: Any) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in emu.requests if r.path == "/api/generate"]


def test_cloud_model_makes_one_token_call_and_says_it_spends_quota(emulator: Any,
                                                                   cli: Any) -> None:
    emu = emulator(models=["llama3.2:latest", CLOUD])
    run = cli("probe", "warmup", "--host", emu.url, "-m", CLOUD, "--json")
    assert run.code == 0
    check = _check(run.json())
    assert check["status"] == "pass"
    assert check["summary"] == (f"{CLOUD} (cloud) answered a one-token call through the server "
                                "(spends one token of the account's Ollama Cloud quota) — direct")
    assert check["facts"]["cloud"]["quota"] == warmup.CLOUD_QUOTA_NOTE
    assert _cloud_calls(emu) == [{"model": CLOUD, "prompt": "Hi", "stream": False,
                                  "options": {"num_predict": 1}, "keep_alive": "10m"}]
    assert not [r for r in emu.requests if r.path == "/api/pull"]


@pytest.mark.parametrize(("mode", "cause", "code", "words"), [
    ("signin", "cloud-signin-required", 401, "not signed in to ollama.com"),
    ("quota", "rate-limited", 429, "usage limit"),
    ("disabled", "cloud-disabled", 403, "cloud models turned off"),
    ("upstream", "bad-gateway", 502, "could not reach Ollama Cloud"),
])
def test_cloud_answers_map_to_their_cause(emulator: Any, mode: str, cause: str, code: int,
                                          words: str) -> None:
    emu = emulator(models=["llama3.2:latest", CLOUD], cloud=mode)
    out = warmup.run(Context(target=parse_target(emu.url), options=Options(model=CLOUD)))
    assert out.status == Status.FAIL
    assert [(f.cause, f.severity.value, f.code) for f in out.findings] == [(cause, "error", code)]
    assert words in out.findings[0].message
    assert "one token" in out.summary and out.summary.endswith("— direct")
    assert len(_cloud_calls(emu)) == 1  # one call, never a retry that spends more quota
    if mode == "signin":
        assert out.findings[0].evidence["signin_url"].startswith("https://ollama.com/connect?")
    if mode == "upstream":
        assert "no such host" in out.findings[0].message  # the upstream's own words


def test_cloud_disabled_is_the_top_cause_of_a_check(emulator: Any, cli: Any) -> None:
    emu = emulator(models=["llama3.2:latest", CLOUD], cloud="disabled")
    run = cli("check", "--host", emu.url, "-m", CLOUD, "--json")
    doc = run.json()
    assert run.code == 1
    top = doc["diagnosis"][0]
    assert (top["cause"], top["code"]) == ("cloud-disabled", 403)


# -- the stream's wall clock ------------------------------------------------------------------


@contextlib.contextmanager
def _endless_ndjson(stall: bool = False) -> Any:
    """A server that answers any request with a 200 NDJSON stream that never ends (or, with
    ``stall``, sends the headers and then nothing)."""
    import socket
    import threading

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    stop = threading.Event()

    def serve() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(5)
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n"
                             b"Transfer-Encoding: chunked\r\n\r\n")
                line = b'{"model":"m","response":"x","done":false}\n'
                with contextlib.suppress(OSError):
                    while stall and not stop.is_set():
                        time.sleep(0.05)
                    while not stop.is_set():
                        conn.sendall(b"%x\r\n%s\r\n" % (len(line), line))
                        time.sleep(0.02)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        srv.close()


def test_endless_stream_is_cut_by_the_wall_clock() -> None:
    import httpx

    with _endless_ndjson() as url, httpx.Client(trust_env=False) as client:
        started = time.monotonic()
        out = warmup.stream_call(client, url + "/api/generate", {"model": "m"}, headers={},
                                 timeout=30, connect_timeout=5, max_bytes=1 << 30,
                                 body_wall_s=1.0)
        elapsed = time.monotonic() - started
    assert out.status == 200 and out.final is None and out.lines > 0
    assert out.error is not None and out.error.kind == "read-timeout"
    assert out.error.exception == "StreamDeadline"
    assert elapsed < 15  # generous: only catches the old unbounded read


def test_stalled_stream_after_headers_is_cut_by_the_wall_clock() -> None:
    import httpx

    with _endless_ndjson(stall=True) as url, httpx.Client(trust_env=False) as client:
        started = time.monotonic()
        out = warmup.stream_call(client, url + "/api/generate",
                                 {"model": "llama3.2", "prompt": "hi"}, headers={},
                                 timeout=60, connect_timeout=5, body_wall_s=1.0)
        elapsed = time.monotonic() - started
    assert out.status == 200 and out.final is None
    assert out.error is not None and out.error.exception == "StreamDeadline"
    assert elapsed < 30


@pytest.mark.parametrize(("faults", "message"), [
    ({"runner_crash": "old"}, "llama runner process has terminated: exit status 2"),
    ({"runner_crash": "new"}, "llama-server process has terminated: exit status 2"),
])
def test_s23_runner_crash_at_load(emulator: Any, cli: Any, faults: dict[str, str],
                                  message: str) -> None:
    emu = emulator(time_scale=FAST, **faults)
    run = cli("probe", "warmup", "--host", emu.url, "-m", "llama3.2", "--json")
    assert run.code == 1
    top = _top(run)
    assert (top["cause"], top["code"], top["severity"]) == ("runner-crashed", 500, "error")
    assert message in top["explanation"]


@pytest.mark.parametrize("message", [
    "model runner has unexpectedly stopped, this may be due to resource limitations or an "
    "internal error, check ollama server logs for details",
    "",  # the emulator's default: an error was encountered while running the model: …
])
def test_s23_runner_crash_mid_stream(emulator: Any, cli: Any, message: str) -> None:
    emu = emulator(time_scale=FAST, mid_stream_error=message)
    run = cli("probe", "warmup", "--host", emu.url, "-m", "llama3.2", "--json")
    assert run.code == 1
    top = _top(run)
    # the error arrived on an HTTP 200 stream; the code is what the client's call amounts to
    assert (top["cause"], top["code"], top["severity"]) == ("runner-crashed", 500, "error")
    assert "in the middle of the stream (HTTP 200)" in top["explanation"]


@pytest.mark.parametrize("kind", ["new", "killed"])  # "old" wording: see the classifier table
def test_s24_out_of_memory(emulator: Any, cli: Any, kind: str) -> None:
    emu = emulator(time_scale=FAST, oom=kind)
    run = cli("probe", "warmup", "--host", emu.url, "-m", "llama3.2", "--json")
    assert run.code == 1
    top = _top(run)
    assert (top["cause"], top["code"], top["severity"]) == ("out-of-memory", 500, "error")


@pytest.mark.parametrize(("offload", "processor", "share"), [
    ("40", "60%/40% CPU/GPU", "60% of its"),
    ("0", "100% CPU", "none on a GPU"),
])
def test_s26_gpu_offload(emulator: Any, cli: Any, offload: str, processor: str,
                         share: str) -> None:
    import httpx

    emu = emulator(time_scale=FAST, offload=offload, models=["llama3.2:latest", "qwen3:8b"])
    # another model already holds memory on the server
    httpx.post(emu.url + "/api/generate", json={"model": "qwen3:8b"}, timeout=10)
    run = cli("probe", "warmup", "--host", emu.url, "-m", "llama3.2", "--json")
    assert run.code == 0  # slow, not failing
    top = _top(run)
    assert (top["cause"], top["code"], top["severity"]) == ("gpu-offload", None, "warning")
    assert processor in top["explanation"] and share in top["explanation"]
    assert top["evidence"]["ps"]["processor"] == processor
    assert top["evidence"]["other_loaded"] == ["qwen3:8b"]
    commands = [c for step in top["fix"] for c in step["commands"]]
    assert "ollama stop qwen3:8b" in commands
    assert "OLLAMA_CONTEXT_LENGTH=2048" in commands


def test_s27_reload_churn(emulator: Any, cli: Any) -> None:
    import httpx

    emu = emulator(time_scale=0.1, cold_load="5")  # 0.5 s per load
    # the user's client loaded the model with its own num_ctx …
    httpx.post(emu.url + "/api/generate",
               json={"model": "llama3.2", "prompt": "hi", "stream": False,
                     "options": {"num_ctx": 8192}}, timeout=10)
    # … and a call without options reloads it
    run = cli("probe", "warmup", "--host", emu.url, "-m", "llama3.2", "--json")
    top = _top(run)
    assert (top["cause"], top["severity"], top["confidence"]) == ("reload-churn", "warning",
                                                                   "high")
    assert "(context 8192 → 4096)" in top["explanation"]
    assert top["evidence"]["context_before"] == 8192
    assert top["evidence"]["context_after"] == 4096
    assert top["evidence"]["load_s"] >= 0.5


def _long_prompts(emu: Any) -> list[int]:
    """Word counts of the generate calls the emulator received with a long prompt (the warm
    calls' prompt is about 50 words; the truncation test's is 1.5 × the context)."""
    words = [len(str(json.loads(r.body).get("prompt", "")).split())
             for r in emu.requests if r.path == "/api/generate"]
    return [n for n in words if n > 1000]


def _fix_commands(finding: dict[str, Any]) -> list[str]:
    return [c for step in finding["fix"] for c in step["commands"]]


def test_s28_prompt_truncated(emulator: Any, cli: Any) -> None:
    emu = emulator(time_scale=FAST, context="2048")
    run = cli("probe", "warmup", "--host", emu.url, "-m", "llama3.2", "--prompt-tokens", "3000",
              "--json")
    assert run.code == 0, run.stderr  # a warning: exit 1 only with --strict
    top = _top(run)
    assert (top["cause"], top["severity"], top["confidence"], top["code"]) == (
        "prompt-truncated", "warning", "high", None)
    truncation = dict(top["evidence"]["truncation"])
    assert truncation == _check(run.json())["facts"]["truncation"]
    estimated = truncation.pop("estimated_s")
    assert isinstance(estimated, float) and 0 <= estimated <= warmup.TRUNCATION_BUDGET_S
    assert truncation == {"ran": True, "context_length": 2048, "prompt_tokens": 3000,
                          "fits": False, "words_sent": 3072,
                          "prompt_eval_count": 2048}  # pinned at the context length
    assert "Your prompts (3000 tokens) are longer than the 2048-token context" in (
        top["explanation"])
    assert "cuts longer prompts without an error" in top["explanation"]
    assert "OLLAMA_CONTEXT_LENGTH=8192" in _fix_commands(top)  # 3000 + room, ≥ 8192
    assert _long_prompts(emu) == [3072]


def test_default_run_sends_no_long_prompt(emulator: Any, cli: Any) -> None:
    # A context small enough, and a server fast enough, for the test to be cheap: before
    # --prompt-tokens every run sent 1.5 × the context here.
    emu = emulator(time_scale=FAST, context="2048")
    run = cli("check", "--host", emu.url, "-m", "llama3.2", "--json")
    assert run.code == 0, run.stderr
    doc = run.json()
    assert "prompt-truncated" not in [d["cause"] for d in doc["diagnosis"]]
    assert _check(doc)["facts"]["truncation"] == {
        "ran": False, "context_length": 2048,
        "why": "not asked: --prompt-tokens N compares your prompts with the context"}
    assert _long_prompts(emu) == []


def test_prompts_within_the_context_fit(emulator: Any, cli: Any) -> None:
    emu = emulator(time_scale=FAST, context="2048")
    run = cli("probe", "warmup", "--host", emu.url, "-m", "llama3.2", "--prompt-tokens", "2048",
              "--json")
    assert run.code == 0, run.stderr
    doc = run.json()
    assert "prompt-truncated" not in [d["cause"] for d in doc["diagnosis"]]
    assert _check(doc)["facts"]["truncation"] == {
        "ran": False, "context_length": 2048, "prompt_tokens": 2048, "fits": True,
        "why": "prompts of 2048 tokens fit the 2048-token context"}
    assert _long_prompts(emu) == []


def test_large_context_skips_the_truncation_test(emulator: Any, cli: Any) -> None:
    # Prompts longer than a context too large to test cheaply: the finding rests on
    # --prompt-tokens alone (MEDIUM), and no long prompt is sent.
    emu = emulator(time_scale=FAST, context="32768")
    run = cli("probe", "warmup", "--host", emu.url, "-m", "llama3.2", "--prompt-tokens",
              "40000", "--json")
    assert run.code == 0, run.stderr
    top = _top(run)
    assert (top["cause"], top["severity"], top["confidence"]) == (
        "prompt-truncated", "warning", "medium")
    why = "a context of 32768 tokens makes a longer prompt too costly to send"
    assert top["evidence"]["truncation"] == {
        "ran": False, "context_length": 32768, "prompt_tokens": 40000, "fits": False,
        "why": why}
    assert f"No test prompt was sent: {why}." in top["explanation"]
    assert "OLLAMA_CONTEXT_LENGTH=65536" in _fix_commands(top)
    assert _long_prompts(emu) == []


@pytest.mark.parametrize("value", ["0", "-5", "abc"])
def test_prompt_tokens_must_be_a_positive_whole_number(cli: Any, value: str) -> None:
    run = cli("check", "--host", "http://127.0.0.1:9", "-m", "llama3.2", "--prompt-tokens",
              value, "--json")
    assert (run.code, run.stdout) == (2, "")
    (line,) = run.stderr.strip().splitlines()
    assert "--prompt-tokens" in line and value in line and "Traceback" not in run.stderr


def test_embedding_model_is_warmed_with_embed(emulator: Any, cli: Any) -> None:
    emu = emulator(time_scale=FAST, models=["nomic-embed-text:latest"])
    run = cli("probe", "warmup", "--host", emu.url, "-m", "nomic-embed-text", "--json")
    assert run.code == 0, run.stdout
    doc = run.json()
    assert not [d for d in doc["diagnosis"] if d["severity"] in ("error", "critical")]
    facts = _check(doc)["facts"]
    assert facts["warmed_with"] == "/api/embed" and facts["load_kind"] == "cold"
    assert not [r for r in emu.requests if r.path == "/api/generate"]
    first = next(json.loads(r.body) for r in emu.requests if r.path == "/api/embed")
    assert first == {"model": "nomic-embed-text", "input": [], "keep_alive": "10m"}


def test_queue_full_during_the_load(emulator: Any, cli: Any) -> None:
    import threading

    import httpx

    emu = emulator(queue="0", cold_load="3")

    def other_client() -> None:
        with contextlib.suppress(httpx.HTTPError):  # cut short when the emulator stops
            httpx.post(emu.url + "/api/generate", json={"model": "llama3.2"}, timeout=10)

    # another client is loading the model: one request already waits for the load
    other = threading.Thread(target=other_client, daemon=True)
    other.start()
    deadline = time.monotonic() + 5
    while "llama3.2:latest" not in emu.loaded and time.monotonic() < deadline:
        time.sleep(0.01)
    run = cli("probe", "warmup", "--host", emu.url, "-m", "llama3.2", "--json")
    top = _top(run)
    assert (top["cause"], top["code"]) == ("server-busy", 503)
    assert "server busy, please try again.  maximum pending requests exceeded" in (
        top["explanation"])


def test_stream_cut_by_a_proxy_read_timeout(emulator: Any, cli: Any) -> None:
    """A 200 stream that a gateway cuts between tokens is the gateway's timeout (S22's stream
    side), not a server error with code 200."""
    from tests.support.reverse_proxy import ReverseProxy

    emu = emulator(slow_generate="3")  # first token, then 3 s of silence
    with ReverseProxy(emu.url, read_timeout=1.0) as proxy:
        run = cli("probe", "warmup", "--host", proxy.url, "-m", "llama3.2", "--json")
    assert run.code == 1
    top = _top(run)
    assert (top["cause"], top["code"], top["severity"]) == ("gateway-timeout", 504, "error")
    assert top["evidence"]["server"].startswith("nginx")
    assert "cut a streamed answer" in top["explanation"]


# -- the client's timeout and retries (--client) ----------------------------------------------


def test_openai_retries_are_named_when_a_cold_load_outlasts_its_timeout(emulator: Any,
                                                                        cli: Any) -> None:
    emu = emulator(cold_load="1.5")
    run = cli("probe", "warmup", "--host", emu.url, "-m", "llama3.2", "--client",
              "openai-python", "--client-timeout", "0.5", "--json")
    check = _check(run.json())
    finding = next(f for f in check["findings"] if f["cause"] == "slow-model-load")
    assert finding["severity"] == "error"
    assert finding["message"].endswith(
        "openai-python retries 2 times by itself, and each retry aborts the load and starts it "
        "again: the call fails after 3 × 0.5 s.")
    assert (finding["evidence"]["client"], finding["evidence"]["client_retries"]) == \
        ("openai-python", 2)


@pytest.mark.parametrize(("client", "given"), [("httpx", 5.0), ("openai-python", 600.0),
                                               ("ollama-python", None)])
def test_client_default_timeout_is_compared_when_none_is_given(emulator: Any, cli: Any,
                                                               client: str,
                                                               given: float | None) -> None:
    emu = emulator()
    run = cli("probe", "warmup", "--host", emu.url, "-m", "llama3.2", "--client", client,
              "--json")
    facts = _check(run.json())["facts"]
    assert facts["load_kind"] == "cold"
    assert facts["client_timeout"]["given"] == given


# ---------------------------------------------------------------------------------------------
# a pasted error that shows no model


def _requests_500(url: str) -> str:
    """What requests prints for a 500 (tests/clients/fixtures/runner-crash/requests.txt): the
    status and the URL, never the model or Ollama's message."""
    return ("Traceback (most recent call last):\n"
            '  File "/home/user/app/app.py", line 5, in <module>\n'
            "    r.raise_for_status()\n"
            "requests.exceptions.HTTPError: 500 Server Error: Internal Server Error for url: "
            f"{url}/api/chat\n")


@pytest.mark.parametrize(("faults", "cause"), [
    ({"runner_crash": "new"}, "runner-crashed"),
    ({"oom": "new"}, "out-of-memory"),
])
def test_pasted_500_without_a_model_warms_the_servers_only_model(
        emulator: Any, cli: Any, tmp_path: Any, faults: dict[str, str], cause: str) -> None:
    emu = emulator(**faults)
    pasted = tmp_path / "error.txt"
    pasted.write_text(_requests_500(emu.url))
    run = cli("check", "--json", "--error-file", str(pasted))
    doc = json.loads(run.stdout)
    assert run.code == 1
    assert doc["diagnosis"][0]["cause"] == cause
    warm = next(c for c in doc["checks"] if c["id"] == "warmup")
    assert warm["facts"]["model"] == "llama3.2:latest"
    assert "only model" in warm["facts"]["model_chosen"]


def test_no_model_is_chosen_when_the_server_has_several(emulator: Any, cli: Any,
                                                        tmp_path: Any) -> None:
    emu = emulator(models=["llama3.2:latest", "qwen2.5:7b"], runner_crash="new")
    pasted = tmp_path / "error.txt"
    pasted.write_text(_requests_500(emu.url))
    run = cli("check", "--json", "--error-file", str(pasted))
    doc = json.loads(run.stdout)
    warm = next(c for c in doc["checks"] if c["id"] == "warmup")
    assert warm["status"] == "skip"
    assert run.code == 1  # the pasted 500 still fails the run


# -- one deadline per call, and what a cut warm-up keeps --------------------------------------


def test_a_stream_whose_status_line_trickles_is_cut_at_its_total_deadline() -> None:
    """httpx's read timeout restarts with every byte: only the call's total deadline (the
    ``net.Cutoff`` every exchange has) ends a status line sent one byte at a time."""
    import httpx

    from tests.support.trickle import TrickleServer

    with TrickleServer("status", 0.2) as server, httpx.Client(trust_env=False) as client:
        started = time.monotonic()
        out = warmup.stream_call(client, server.url + "/api/generate", {"model": "m"},
                                 headers={}, timeout=1.0, connect_timeout=1.0,
                                 body_wall_s=5.0)
        elapsed = time.monotonic() - started
        server.stop()
    assert out.status is None and out.lines == 0
    assert out.error is not None
    assert (out.error.kind, out.error.exception) == ("read-timeout", "DeadlineExceeded")
    assert elapsed < 10  # generous: the old per-read timeout never ended it


def test_an_endless_stream_is_cut_at_its_byte_cap_when_that_comes_first() -> None:
    import httpx

    with _endless_ndjson() as url, httpx.Client(trust_env=False) as client:
        out = warmup.stream_call(client, url + "/api/generate", {"model": "m"}, headers={},
                                 timeout=30, connect_timeout=5, max_bytes=2000,
                                 body_wall_s=60.0)
    assert out.status == 200 and out.truncated and out.final is None
    assert out.error is None  # the cap, not a deadline or the server, ended it
    assert 0 < out.lines <= 2000 // 40


def test_calls_end_before_the_runs_deadline_plus_excused_load_waits() -> None:
    now = [100.0]
    ctx = Context(parse_target("127.0.0.1:1"), Options(timeout=5), clock=lambda: now[0])
    r = warmup._Run(ctx, "m", "http://127.0.0.1:1", {}, None)
    assert (r.limit(), r.body_limit(), r.cut_short) == (5, 5, False)  # no deadline: --timeout
    ctx.deadline = 110.0
    assert r.limit() == 5
    now[0] = 107.5
    assert (r.body_limit(), r.cut_short) == (2.5, True)
    now[0] = 120.0
    assert r.limit() == 1.0  # past the deadline: the floor every operation keeps
    error = warmup.net.NetError("read-timeout", "cut", "StreamDeadline")
    assert r.out_of_time(200, error)
    assert not r.out_of_time(None, error)  # no headers: not a body the deadline cut
    r.body_limit()
    now[0] = 100.0
    r.body_limit()
    assert not r.out_of_time(200, error)  # given its full --timeout: the server's doing


def _warmup_only() -> tuple[Any, ...]:
    from ollama_doctor.registry import REGISTRY, ProbeSpec

    spec = next(s for s in REGISTRY if s.id == "warmup")
    return (ProbeSpec(spec.id, spec.title, spec.description),)  # without its prerequisites


def test_a_warmup_cut_at_its_budget_keeps_what_it_had_established(emulator: Any) -> None:
    from ollama_doctor.runner import run_probes

    emu = emulator(cold_load="0.3", slow_generate="60")  # headers at once, a token in 60 s
    ctx = Context(parse_target(emu.url), Options(model="llama3.2", timeout=10,
                                                 load_timeout=30, client_timeout=0.1))
    (result,) = run_probes(ctx, ["warmup"], registry=_warmup_only(), budget=2.0)
    assert result.status is Status.ERROR
    assert result.error is not None and result.error.type == "Timeout"
    head, _, rest = result.summary.partition("; ")
    assert head.startswith("timed out after ")
    assert rest.startswith("llama3.2 loaded cold in 0.3")
    assert "; warm call 1 answered HTTP 200 after " in rest
    assert rest.endswith(" ms, then no complete answer")
    facts = result.facts
    assert (facts["model"], facts["loaded_before"], facts["load_kind"]) == ("llama3.2", False,
                                                                             "cold")
    assert facts["load_s"] >= 0.3
    assert {k: facts["warm_call_pending"][k] for k in ("call", "status")} == {"call": 1,
                                                                              "status": 200}
    # the load was judged against the client's 0.1 s before the warm calls began
    assert [(f.cause, f.severity.value) for f in result.findings] == [("slow-model-load",
                                                                       "error")]
    assert result.findings[0].message.startswith("A cold load of llama3.2 takes 0.3 s, longer "
                                                 "than the client's 0.1 s timeout.")


def test_a_body_the_runs_deadline_cuts_is_not_blamed_on_the_server(emulator: Any) -> None:
    """A stream cut short by the run's deadline (less than --timeout) ends the probe with what
    it knows, before the runner's cut, and names no server cause."""
    from ollama_doctor.runner import run_probes

    emu = emulator(slow_generate="60")
    ctx = Context(parse_target(emu.url), Options(model="llama3.2", timeout=10,
                                                 load_timeout=30))
    ctx.deadline = ctx.clock() + 100  # narrowed by the runner to 85 % of the budget
    (result,) = run_probes(ctx, ["warmup"], registry=_warmup_only(), budget=6.0)
    assert result.status is Status.WARN, result.summary
    assert result.error is None
    assert result.summary.startswith("stopped at the run's deadline (reading the answer to warm "
                                     "call 1); llama3.2 loaded cold in ")
    assert result.facts["stopped"] == "reading the answer to warm call 1"
    assert result.facts["load_kind"] == "cold"
    assert not result.findings


def test_waiting_for_an_unload_stops_at_the_runs_deadline() -> None:
    """--cold unloads, then polls /api/ps until the model is gone, for at most 10 s: never
    past the run's deadline (a server that never lets go must not cost 10 s of a 2 s run)."""
    polls: list[float] = []

    class Stuck(warmup._Run):
        def call(self, method: str, path: str, body: Any = None, *,
                 timeout: float | None = None) -> net.HttpReply:
            return net.HttpReply(method, self.api + path, status=200, body=b"{}")

        def ps(self) -> tuple[Any, net.HttpReply]:
            polls.append(time.perf_counter())
            return object(), net.HttpReply("GET", self.api + "/api/ps", status=200)

    ctx = Context(target=parse_target("http://127.0.0.1:1"), options=Options(timeout=2.0),
                  env={})
    ctx.deadline = ctx.clock() + 0.3
    r = Stuck(ctx, "llama3.2", "http://127.0.0.1:1", {}, client=None)
    assert warmup._unload(r) is None
    assert r.facts["unload_pending"] is True
    # polled for what was left of the run (0.3 s, a poll every 0.05 s), not for 10 s
    assert 1 <= len(polls) <= 12
