"""Typed evidence between probes: the dataclasses of ``ollama_doctor.facts`` travel from a
probe's ``Outcome`` to its ``ProbeResult`` with the JSON facts unchanged, ``Context.facts``
hands them out by type, the schema's ``facts_<probe>`` definitions are generated from them, and
no probe reads another probe's facts dict any more."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema

from ollama_doctor import facts as facts_module
from ollama_doctor.context import Context, Options
from ollama_doctor.facts import (
    EVIDENCE,
    ClientRoute,
    ConnectFact,
    ModelsFacts,
    ProxyFacts,
    ReachabilityFacts,
    schema_defs,
)
from ollama_doctor.probes import proxy, reachability
from ollama_doctor.result import Outcome, ProbeResult, Status
from ollama_doctor.target import parse_target

PACKAGE = Path(facts_module.__file__).parent
SCHEMA = json.loads((PACKAGE / "schema.json").read_text(encoding="utf-8"))


def test_schema_definitions_are_generated_from_the_dataclasses() -> None:
    for name, body in schema_defs().items():
        assert SCHEMA["$defs"][name] == body, f"regenerate: python -m ollama_doctor.facts ({name})"
    wired = {rule["if"]["properties"]["id"]["const"]
             for rule in SCHEMA["$defs"]["check"]["allOf"]}
    assert wired == {cls.PROBE for cls in EVIDENCE}


def test_evidence_rides_from_outcome_to_result_and_json_is_unchanged() -> None:
    seen = ReachabilityFacts(addresses=("127.0.0.1",),
                             connects=(ConnectFact("127.0.0.1", 11434, False, 0.2, "refused"),))
    plain = {"addresses": ["127.0.0.1"], "connects": [
        {"address": "127.0.0.1", "port": 11434, "ok": False, "elapsed_ms": 0.2,
         "error": "refused"}]}
    outcome = Outcome.from_findings("s", dict(plain), [], evidence=seen)
    result = ProbeResult("reachability", "Reachability", outcome.status, outcome.summary,
                         facts=outcome.facts)  # what the runner does
    assert result.evidence is seen
    assert json.dumps(result.to_dict()["facts"]) == json.dumps(plain)
    assert reachability.evidence_of(plain) == seen
    ctx = Context(parse_target("http://127.0.0.1:11434"), Options(), env={},
                  results={"reachability": result})
    assert ctx.facts(ReachabilityFacts) is seen
    assert ctx.facts(ModelsFacts) is None  # that probe did not run
    assert seen.all_refused and seen.any_refused and seen.working_address is None


def test_proxy_routes_typed_from_a_real_run() -> None:
    ctx = Context(parse_target("http://127.0.0.1:11434"), Options(),
                  env={"HTTP_PROXY": "http://user:secret@127.0.0.1:3128"})
    outcome = proxy.run(ctx)
    assert isinstance(outcome.evidence, ProxyFacts)
    httpx_route = outcome.evidence.clients["httpx"]
    assert httpx_route == ClientRoute("proxy", outcome.facts["clients"]["httpx"]["proxy"],
                                      "HTTP_PROXY")
    assert "secret" not in (httpx_route.proxy or "")
    check = {"id": "proxy", "title": "Proxy", "status": outcome.status.value,
             "summary": outcome.summary, "duration_ms": 0.0, "prerequisite": False,
             "blocked_by": None, "error": None, "facts": outcome.facts, "findings": []}
    schema = {"$defs": SCHEMA["$defs"], "$ref": "#/$defs/check"}
    jsonschema.validate(check, schema)
    assert outcome.status in (Status.PASS, Status.WARN, Status.FAIL)


def test_no_probe_reads_another_probes_facts_dict() -> None:
    pattern = re.compile(r"\b(?:reach|models|auth|proxy|result|prior|other)\.facts\b"
                         r"|\.result\([^)]*\)\.facts")
    offenders: list[str] = []
    for path in sorted((PACKAGE / "probes").glob("*.py")):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if pattern.search(line):
                offenders.append(f"{path.name}:{n}: {line.strip()}")
    assert offenders == []
