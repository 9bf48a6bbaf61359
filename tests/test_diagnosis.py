"""The ranking rule of diagnosis.rank, as a table of cases."""

from __future__ import annotations

import pytest

from ollama_doctor.diagnosis import rank, summary
from ollama_doctor.result import (
    Confidence,
    Finding,
    ProbeResult,
    Severity,
    Status,
)

C, E, W, INFO = Severity.CRITICAL, Severity.ERROR, Severity.WARNING, Severity.INFO
HIGH, MED = Confidence.HIGH, Confidence.MEDIUM


def result(probe: str, *findings: Finding, status: Status = Status.FAIL) -> ProbeResult:
    return ProbeResult(probe, probe, status, "s", findings=list(findings))


def f(cause: str, sev: Severity = E, conf: Confidence = HIGH, code: int | None = None,
      **evidence: object) -> Finding:
    return Finding(cause, sev, f"{cause} seen", dict(evidence), confidence=conf, code=code)


CASES = [
    # (description, probe results, expected cause order)
    ("severity first",
     [result("a", f("high-latency", W)), result("b", f("model-not-found", E))],
     ["model-not-found", "high-latency"]),
    ("lower layer first at equal severity",
     [result("models", f("model-not-found", E)), result("proxy", f("proxy-blocks", E))],
     ["proxy-blocks", "model-not-found"]),
    ("proved before inferred at equal severity and layer",
     [result("a", f("container-localhost", E, MED)), result("b", f("connect-timeout", E))],
     ["connect-timeout", "container-localhost"]),
    ("proxy capture absorbs the 502 it caused",
     [result("reach", f("bad-gateway", C, code=502)),
      result("proxy", f("proxy-captures-local", E, code=502))],
     ["proxy-captures-local"]),
    ("a confirmed container-localhost absorbs server-not-running",
     [result("reach", f("server-not-running", C)),
      result("container", f("container-localhost", C, HIGH))],
     ["container-localhost"]),
    ("an inferred container-localhost ranks below server-not-running",
     [result("reach", f("server-not-running", C)),
      result("container", f("container-localhost", E, MED))],
     ["server-not-running", "container-localhost"]),
    ("independent problems are all listed, the blocking one first",
     [result("proxy", f("proxy-captures-local", E)), result("models", f("model-not-found", E))],
     ["proxy-captures-local", "model-not-found"]),
    ("findings of one cause merge",
     [result("a", f("runner-crashed", W)), result("b", f("runner-crashed", E))],
     ["runner-crashed"]),
    ("OOM absorbs the runner crash it explains",
     [result("warmup", f("runner-crashed", E)), result("logs", f("out-of-memory", E))],
     ["out-of-memory"]),
]


@pytest.mark.parametrize(("results", "order"), [(r, o) for _, r, o in CASES],
                         ids=[d for d, _, _ in CASES])
def test_ranking(results: list[ProbeResult], order: list[str]) -> None:
    assert [d.cause for d in rank(results)] == order


def test_entry_contents() -> None:
    ranked = rank([result("reach", f("bad-gateway", C, code=502, server="squid")),
                   result("proxy", f("proxy-captures-local", E, code=403, proxy="p"))])
    top = ranked[0]
    assert top.rank == 1
    assert top.code == 403  # the status observed, not the catalogue's 502
    assert top.severity is E
    assert top.evidence["proxy"] == "p"
    assert top.evidence["explains"][0]["cause"] == "bad-gateway"
    assert top.probes == ["reach", "proxy"]
    assert top.retry.helps is False
    assert "explains bad-gateway" in top.why_ranked


def test_code_falls_back_to_catalogue_then_none() -> None:
    ranked = rank([result("m", f("model-not-found")), result("r", f("connect-timeout", C))])
    codes = {d.cause: d.code for d in ranked}
    assert codes == {"model-not-found": 404, "connect-timeout": None}


def test_slow_model_load_retry_overrules_504_advice() -> None:
    (entry,) = rank([result("warmup", f("slow-model-load", E))])
    assert entry.code == 504
    assert entry.retry.helps is False
    assert "never succeed" in entry.retry.advice


@pytest.mark.parametrize(("findings", "statuses", "strict", "status", "code"), [
    ([], [Status.PASS], False, "healthy", 0),
    ([f("gpu-offload", INFO)], [Status.PASS], False, "healthy", 0),
    ([f("gpu-offload", W)], [Status.WARN], False, "degraded", 0),
    ([f("gpu-offload", W)], [Status.WARN], True, "degraded", 1),
    ([f("model-not-found", E)], [Status.FAIL], False, "failing", 1),
    ([], [Status.PASS, Status.ERROR], False, "failing", 1),
])
def test_summary_and_exit_code(findings: list[Finding], statuses: list[Status], strict: bool,
                               status: str, code: int) -> None:
    results = [ProbeResult(f"p{i}", "t", s, "s") for i, s in enumerate(statuses)]
    results[0].findings = findings
    out = summary(rank(results), results, strict=strict)
    assert (out["status"], out["exit_code"]) == (status, code)


def test_direct_path_failure_is_a_note_when_the_proxy_carries_the_request() -> None:
    proxy = result("proxy", status=Status.PASS)
    proxy.facts = {"comparison": {"verdict": "proxy-only-path"}}
    reach = result("reachability", f("dns-failure", C))
    ranked = rank([proxy, reach])
    assert [(d.cause, d.severity) for d in ranked] == [("dns-failure", INFO)]
    assert "direct path only" in ranked[0].explanation
    # the same failure without a proxy in the way stays critical
    assert rank([reach])[0].severity is C


def test_proxy_blocks_absorbs_the_direct_path() -> None:
    proxy = result("proxy", f("proxy-blocks", C, code=403))
    proxy.facts = {"comparison": {"verdict": "proxy-blocks"}}
    ranked = rank([proxy, result("reachability", f("dns-failure", C))])
    assert [d.cause for d in ranked if d.severity is not INFO] == ["proxy-blocks"]
    assert ranked[0].code == 403
