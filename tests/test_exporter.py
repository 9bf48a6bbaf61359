"""The Prometheus exporter, scraped over real HTTP: /probe, /metrics, /healthz, bounds."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ollama_doctor.exporter import Exporter, ExporterConfig, ListenError, parse_listen
from tests.conftest import clean_environ, closed_port

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


@pytest.fixture
def exporter() -> Iterator[Callable[..., tuple[Exporter, str]]]:
    started: list[Exporter] = []

    def start(**kwargs: Any) -> tuple[Exporter, str]:
        kwargs.setdefault("env", {})
        exp = Exporter(ExporterConfig(listen="127.0.0.1:0", **kwargs))
        url = exp.bind()
        threading.Thread(target=exp.serve, daemon=True).start()
        started.append(exp)
        return exp, url

    yield start
    for exp in started:
        exp.server.shutdown()


def scrape(url: str, path: str, timeout: float = 30, **headers: str) -> httpx.Response:
    with httpx.Client(trust_env=False, timeout=timeout) as client:
        return client.get(url + path, headers=headers)


def test_probe_healthy_server(exporter: Any, emulator: Any) -> None:
    server = emulator()
    _, url = exporter()
    reply = scrape(url, f"/probe?target={server.url}&model=llama3.2")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = parse(reply.text)
    assert value(samples, "ollama_doctor_check_success") == 1
    for probe in ("proxy", "reachability", "latency", "models", "auth"):
        assert value(samples, "ollama_doctor_probe_success", probe=probe) == 1, probe
        assert value(samples, "ollama_doctor_probe_duration_seconds", probe=probe) is not None
    assert value(samples, "ollama_doctor_server_info", version="0.33.0") == 1
    for phase in ("connect", "processing", "transfer"):
        phase_value = value(samples, "ollama_doctor_http_duration_seconds", phase=phase)
        assert phase_value is not None and phase_value >= 0
    assert value(samples, "ollama_doctor_time_to_first_byte_seconds") is not None
    assert not [k for k in samples if k[0] == "ollama_doctor_cause"]
    # the fleet set never loads a model, even with model= given
    assert server.loaded == {}
    assert not [k for k in samples if k[0] == "ollama_doctor_model_load_seconds"]


def test_probe_refusing_server(exporter: Any) -> None:
    _, url = exporter()
    samples = parse(scrape(url, f"/probe?target=http://127.0.0.1:{closed_port()}").text)
    assert value(samples, "ollama_doctor_check_success") == 0
    assert value(samples, "ollama_doctor_probe_success", probe="reachability") == 0
    assert value(samples, "ollama_doctor_cause", cause="server-not-running",
                 severity="critical", code="") == 1


def test_probe_warmup_only_when_asked(exporter: Any, emulator: Any) -> None:
    server = emulator(offload="60")
    _, url = exporter()
    samples = parse(scrape(url, f"/probe?target={server.url}&model=llama3.2"
                                "&probes=reachability,warmup").text)
    assert "llama3.2:latest" in server.loaded
    load = value(samples, "ollama_doctor_model_load_seconds", model="llama3.2")
    assert load is not None and load >= 0
    fraction = value(samples, "ollama_doctor_model_gpu_fraction", model="llama3.2")
    assert fraction is not None and 0.5 < fraction < 0.7
    assert value(samples, "ollama_doctor_probe_success", probe="warmup") == 1


@pytest.mark.parametrize(("query", "status", "message"), [
    ("", 400, "target parameter is missing"),
    ("?target=http://127.0.0.1:1&probes=nope", 400, "unknown probe 'nope'"),
    ("?target=http://127.0.0.1:99999", 400, "out of range"),
])
def test_probe_bad_requests_are_one_line(exporter: Any, query: str, status: int,
                                         message: str) -> None:
    _, url = exporter()
    reply = scrape(url, "/probe" + query)
    assert reply.status_code == status
    assert message in reply.text
    assert len(reply.text.strip().splitlines()) == 1


def test_scrape_timeout_header_bounds_a_hanging_target(exporter: Any, emulator: Any) -> None:
    """A hanging server: the scrape answers within its budget, and other scrapes go on."""
    hanging, healthy = emulator(hang=""), emulator()
    _, url = exporter(timeout=5.0)
    result: dict[str, Any] = {}

    def slow_scrape() -> None:
        started = time.monotonic()
        reply = scrape(url, f"/probe?target={hanging.url}",
                       **{"X-Prometheus-Scrape-Timeout-Seconds": "2"})
        result["elapsed"] = time.monotonic() - started
        result["samples"] = parse(reply.text)

    thread = threading.Thread(target=slow_scrape)
    thread.start()
    time.sleep(0.2)
    fast = parse(scrape(url, f"/probe?target={healthy.url}&probes=reachability").text)
    assert value(fast, "ollama_doctor_check_success") == 1
    thread.join(timeout=30)
    assert value(result["samples"], "ollama_doctor_check_success") == 0
    assert result["elapsed"] < 5, result  # 2 s header - 0.5 s offset, plus slack for a busy box


def test_concurrency_limit_answers_503(exporter: Any, emulator: Any) -> None:
    hanging = emulator(hang="")
    _, url = exporter(max_concurrent=1, timeout=3.0)
    first = threading.Thread(target=scrape, args=(url, f"/probe?target={hanging.url}"))
    first.start()
    time.sleep(0.3)
    reply = scrape(url, f"/probe?target={hanging.url}",
                   **{"X-Prometheus-Scrape-Timeout-Seconds": "1"})
    assert reply.status_code == 503
    assert "too many checks in flight (at most 1)" in reply.text
    first.join(timeout=30)


def test_metrics_has_process_metrics_and_background_targets(exporter: Any,
                                                            emulator: Any) -> None:
    server = emulator()
    refusing = f"http://127.0.0.1:{closed_port()}"
    _, url = exporter(targets=(server.url, refusing), interval=0.2)
    deadline = time.monotonic() + 30
    samples: Samples = {}
    while time.monotonic() < deadline:
        samples = parse(scrape(url, "/metrics").text)
        if (value(samples, "ollama_doctor_check_success", target=server.url) is not None
                and value(samples, "ollama_doctor_check_success", target=refusing) is not None):
            break
        time.sleep(0.2)
    assert value(samples, "ollama_doctor_check_success", target=server.url) == 1
    assert value(samples, "ollama_doctor_check_success", target=refusing) == 0
    assert value(samples, "ollama_doctor_cause", target=refusing, cause="server-not-running",
                 severity="critical", code="") == 1
    assert any(name == "process_resident_memory_bytes" for name, _ in samples)
    assert value(samples, "ollama_doctor_last_check_timestamp_seconds",
                 target=server.url) is not None


def test_healthz_and_unknown_path(exporter: Any) -> None:
    _, url = exporter()
    assert scrape(url, "/healthz").text == "ok\n"
    reply = scrape(url, "/nope")
    assert reply.status_code == 404


@pytest.mark.parametrize(("listen", "expected"), [
    ("127.0.0.1:9765", ("127.0.0.1", 9765)), (":0", ("127.0.0.1", 0)),
    ("[::1]:8080", ("::1", 8080)), ("0.0.0.0:1", ("0.0.0.0", 1)),
])
def test_parse_listen(listen: str, expected: tuple[str, int]) -> None:
    assert parse_listen(listen) == expected


@pytest.mark.parametrize("listen", ["9765", "host:port", "127.0.0.1:70000"])
def test_parse_listen_rejects(listen: str) -> None:
    with pytest.raises(ListenError):
        parse_listen(listen)


def test_cli_exporter_serves_and_stops_on_sigterm(emulator: Any) -> None:
    server = emulator()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ollama_doctor", "exporter", "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_environ())
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        samples = parse(scrape(url, f"/probe?target={server.url}").text)
        assert value(samples, "ollama_doctor_check_success") == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err


@pytest.mark.parametrize(("args", "message"), [
    (["--listen", "nope"], "invalid --listen 'nope'"),
    (["--probes", "reachability,nope"], "unknown probe 'nope'"),
    (["--target", "http://x:99999"], "out of range"),
    (["--interval", "0"], "--interval must be a positive"),
])
def test_cli_exporter_bad_options(args: list[str], message: str, cli: Any) -> None:
    run = cli("exporter", *args)
    assert run.code == 2
    assert message in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1


def test_cli_exporter_port_in_use(cli: Any) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        run = cli("exporter", "--listen", f"127.0.0.1:{port}")
    assert run.code == 2
    assert f"cannot listen on 127.0.0.1:{port}" in run.stderr
    assert "Traceback" not in run.stderr


def test_probe_sends_the_api_key_only_when_allowed(exporter: Any, emulator: Any) -> None:
    """/probe targets come from whoever scrapes: OLLAMA_API_KEY stays home by default."""
    server = emulator(auth="s3cret-token")
    env = {"OLLAMA_API_KEY": "s3cret-token"}
    _, guarded = exporter(env=env)
    reply = scrape(guarded, f"/probe?target={server.url}")
    samples = parse(reply.text)
    assert value(samples, "ollama_doctor_check_success") == 0
    assert [k for k in samples if k[0] == "ollama_doctor_cause"
            and ("cause", "auth-required") in k[1]]
    assert "s3cret-token" not in reply.text
    _, trusting = exporter(env=env, probe_api_key=True)
    assert value(parse(scrape(trusting, f"/probe?target={server.url}").text),
                 "ollama_doctor_check_success") == 1
