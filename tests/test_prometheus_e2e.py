"""End to end with a REAL Prometheus (Debian's `prometheus` package) on loopback.

Prometheus scrapes the exporter's /probe, blackbox style, for three emulated servers — one
healthy, one refusing, one slower than the scrape timeout — and its HTTP API must show
``ollama_doctor_check_success`` 1 and 0 where expected and the ``server-not-running`` cause.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import clean_environ, closed_port, free_port
from tests.support.netns import _skip_or_fail

INTERVAL = 3  # seconds between scrapes (and the scrape timeout)


def prometheus_binary() -> str:
    path = shutil.which("prometheus")
    if path is None:
        _skip_or_fail("the prometheus binary is not installed (Debian package: prometheus)")
    assert path is not None
    return path


@pytest.fixture
def exporter_url() -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ollama_doctor", "exporter", "--listen", "127.0.0.1:0",
         "--timeout", "5"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=clean_environ())
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip()
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def query(api: str, promql: str) -> list[dict[str, Any]]:
    with httpx.Client(trust_env=False, timeout=10) as client:
        reply = client.get(f"{api}/api/v1/query", params={"query": promql})
    # Prometheus answers 503 'Service Unavailable' (plain text) until its storage is ready:
    # a network-level "not yet" for the waiting loop, not an answer.
    reply.raise_for_status()
    data = reply.json()
    assert data["status"] == "success", data
    result: list[dict[str, Any]] = data["data"]["result"]
    return result


def by_instance(result: list[dict[str, Any]]) -> dict[str, float]:
    return {r["metric"]["instance"]: float(r["value"][1]) for r in result}


@pytest.mark.slow  # a real Prometheus scraping for ~10 s: the slow step of .ci/run
@pytest.mark.timeout(180)
def test_real_prometheus_scrapes_the_exporter(tmp_path: Path, emulator: Any,
                                              exporter_url: str) -> None:
    binary = prometheus_binary()
    healthy = emulator().url
    slow = emulator(latency=str(INTERVAL * 2000)).url  # slower than the scrape timeout
    refusing = f"http://127.0.0.1:{closed_port()}"
    exporter_address = exporter_url.removeprefix("http://")
    config = {
        "global": {"scrape_interval": f"{INTERVAL}s", "scrape_timeout": f"{INTERVAL}s"},
        "scrape_configs": [{
            "job_name": "ollama-doctor",
            "metrics_path": "/probe",
            "static_configs": [{"targets": [healthy, refusing, slow]}],
            "relabel_configs": [
                {"source_labels": ["__address__"], "target_label": "__param_target"},
                {"source_labels": ["__param_target"], "target_label": "instance"},
                {"target_label": "__address__", "replacement": exporter_address},
            ],
        }],
    }
    config_path = tmp_path / "prometheus.yml"
    config_path.write_text(json.dumps(config))  # JSON is YAML
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    log = (tmp_path / "prometheus.log").open("w")
    proc = subprocess.Popen(
        [binary, f"--config.file={config_path}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=log, stderr=subprocess.STDOUT, env=clean_environ())
    try:
        deadline = time.monotonic() + 120
        counts: dict[str, float] = {}
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()[-2000:]
            try:
                counts = by_instance(query(
                    api, "count_over_time(ollama_doctor_check_success[5m])"))
            except httpx.HTTPError:
                counts = {}
            if len(counts) == 3 and min(counts.values()) >= 2:
                break
            time.sleep(1)
        assert len(counts) == 3 and min(counts.values()) >= 2, counts  # two scrapes each

        assert by_instance(query(api, "up")) == {healthy: 1, refusing: 1, slow: 1}
        success = by_instance(query(api, "ollama_doctor_check_success"))
        assert success == {healthy: 1, refusing: 0, slow: 0}, success
        causes = query(api, 'ollama_doctor_cause{cause="server-not-running"}')
        assert [c["metric"]["instance"] for c in causes] == [refusing]
        assert causes[0]["metric"]["severity"] == "critical"
        # the slow server: the check cut its waits to fit the scrape's timeout header
        unresponsive = query(api, 'ollama_doctor_cause{cause="server-unresponsive"}')
        assert [c["metric"]["instance"] for c in unresponsive] == [slow]
        version = query(api, "ollama_doctor_server_info")
        assert {(v["metric"]["instance"], v["metric"]["version"]) for v in version} == {
            (healthy, "0.33.0")}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()
