"""The cause catalogue and the error-code table are public contracts."""

from __future__ import annotations

import re
from pathlib import Path

from ollama_doctor.causes import CATALOGUE, CAUSES, CODE_TABLE, retry_for
from ollama_doctor.explain import readme_tables
from ollama_doctor.registry import REGISTRY
from ollama_doctor.report import schema

REQUIRED = {
    "server-not-running": None, "container-localhost": None, "bound-to-loopback": None,
    "connect-timeout": None, "dns-failure": None, "ipv6-localhost": None,
    "unspecified-address": None, "wrong-port-scheme": None, "wrong-base-path": 404,
    "tls-error": None, "proxy-captures-local": 502, "proxy-blocks": 403,
    "proxy-unreachable": None, "proxy-unsupported": None, "high-latency": None,
    "not-ollama": None, "bad-request": 400, "model-capability": 400, "auth-required": 401,
    "cloud-signin-required": 401, "origin-forbidden": 403, "host-forbidden": 403,
    "forbidden": 403, "model-not-found": 404, "rate-limited": 429, "runner-crashed": 500,
    "out-of-memory": 500, "server-error": 500, "bad-gateway": 502, "server-busy": 503,
    "gateway-timeout": 504, "slow-model-load": 504, "gpu-offload": None,
    "ollama-outdated": None, "fd-limit-low": None, "memory-limit": None,
    "disk-space-low": None, "wrong-instance": 404, "setting-not-applied": None,
    "reload-churn": None, "prompt-truncated": None, "method-not-allowed": 405,
}


def test_required_causes_exist_with_their_codes() -> None:
    assert {c: CAUSES[c].code for c in REQUIRED} == REQUIRED


def test_ids_are_unique_and_kebab_case() -> None:
    ids = [c.id for c in CATALOGUE]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", i) for i in ids)


def test_documented_codes() -> None:
    assert sorted(CODE_TABLE) == [400, 401, 403, 404, 429, 500, 502, 503, 504]
    for code, row in CODE_TABLE.items():
        assert row.retry.helps is (code == 429 or code >= 500), code
    assert CODE_TABLE[429].source == "intermediary"
    assert CODE_TABLE[504].source == "intermediary"
    assert "30 s" in CODE_TABLE[500].retry.advice


def test_cause_retry_overrules_code() -> None:
    assert retry_for("slow-model-load", 504).helps is False
    assert retry_for("out-of-memory", 500).helps is False
    assert retry_for("server-busy", 503).helps is True
    assert retry_for("model-not-found", 404).helps is False


def test_schema_enumerates_the_catalogue() -> None:
    assert sorted(schema()["$defs"]["cause"]["enum"]) == sorted(CAUSES)


def test_registry_names_only_known_causes() -> None:
    for spec in REGISTRY:
        assert set(spec.causes) <= set(CAUSES), spec.id
        for dep in (*spec.needs, *spec.after):
            assert dep in {s.id for s in REGISTRY}


def test_readme_tables_are_generated_from_the_catalogue() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    assert readme_tables() in readme, "regenerate with: python -m ollama_doctor.explain"
