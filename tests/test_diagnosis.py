"""The ranking rule of diagnosis.rank, as a table of cases."""

from __future__ import annotations

import pytest

from ollama_doctor.diagnosis import PASTED, explain_error, rank, summary
from ollama_doctor.errortext import analyse
from ollama_doctor.result import (
    Confidence,
    Finding,
    FixStep,
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


# ---------------------------------------------------------------------------------------------
# the pasted error is evidence the live run must answer


RATE = ("openai.RateLimitError: Error code: 429 - {'error': {'message': 'you (alice) have "
        "reached your hourly usage limit'}}")


def healthy(*, credentials: str | None = None, status: int = 200) -> list[ProbeResult]:
    """A live run where every check passed; the auth probe's call answered ``status``."""
    auth = result("auth", status=Status.PASS)
    auth.facts = {"client": {"credentials": credentials},
                  "call": {"request": "GET http://127.0.0.1:11434/api/tags", "status": status}}
    return [result("reachability", status=Status.PASS), auth]


def test_a_pasted_failure_the_live_run_does_not_reproduce_leads_at_error_level() -> None:
    results = healthy()
    ranked = rank(results, error=analyse(RATE))
    top = ranked[0]
    assert (top.cause, top.severity, top.confidence, top.code, top.probes) == (
        "rate-limited", E, HIGH, 429, [PASTED])
    assert "did not reproduce" in top.explanation and "HTTP 200" in top.explanation
    assert "--load" in top.explanation  # the flag that would confirm it
    assert "not reproduced by the live run" in top.why_ranked
    assert top.evidence["reproduced"] is False
    out = summary(ranked, results)
    assert (out["status"], out["exit_code"], out["top_cause"]) == ("failing", 1, "rate-limited")
    verdict = explain_error(analyse(RATE), ranked)
    assert (verdict["verdict"], verdict["cause"], verdict["rank"]) == (
        "not-reproduced", "rate-limited", 1)
    # without the pasted error the same run is healthy
    assert summary(rank(results), results)["status"] == "healthy"


def test_a_401_the_doctor_does_not_get_names_the_key_the_client_does_not_read() -> None:
    results = healthy(credentials="OLLAMA_API_KEY (sent as Authorization: Bearer)")
    text = "openai.AuthenticationError: Error code: 401 - {'error': 'unauthorized'}"
    (top, *_) = rank(results, error=analyse(text))
    assert top.cause == "auth-required" and top.severity is E
    assert "openai-python does not read OLLAMA_API_KEY" in top.explanation
    # ollama-python does read it: the explanation says so instead
    python = "ollama._types.ResponseError: 401 Unauthorized (status code: 401)"
    (top, *_) = rank(results, error=analyse(python))
    assert "does not read" not in top.explanation
    assert "environment may lack it" in top.explanation


def test_an_empty_403_not_reproduced_names_the_candidates_it_allows() -> None:
    (top, *_) = rank(healthy(), error=analyse("ollama._types.ResponseError:  (status code: 403)"))
    assert (top.cause, top.severity, top.confidence) == ("host-forbidden", E, Confidence.LOW)
    assert "origin-forbidden" in top.explanation
    assert top.evidence["pasted"]["candidates"][:2] == ["host-forbidden", "origin-forbidden"]


def test_a_live_cause_among_the_candidates_leads_as_confirmed() -> None:
    results = [result("models", f("model-not-found", E, code=404))]
    text = "ollama._types.ResponseError: model 'llama3.2' not found (status code: 404)"
    ranked = rank(results, error=analyse(text))
    assert [(d.cause, d.probes) for d in ranked] == [("model-not-found", ["models"])]
    assert explain_error(analyse(text), ranked)["verdict"] == "confirmed"


def test_a_live_root_that_absorbs_a_candidate_confirms_it() -> None:
    results = [result("proxy", f("proxy-blocks", E, code=403))]
    text = "ConnectionError: Failed to connect to Ollama. Please check that Ollama is downloaded"
    ranked = rank(results, error=analyse(text))
    assert [d.cause for d in ranked] == ["proxy-blocks"]
    assert explain_error(analyse(text), ranked)["verdict"] == "confirmed"


def test_another_live_cause_keeps_the_rules_and_the_pasted_entry_says_how_they_relate() -> None:
    results = [result("proxy", f("proxy-captures-local", E, code=502))]
    ranked = rank(results, error=analyse(RATE))
    assert [(d.cause, d.severity) for d in ranked] == [("proxy-captures-local", E),
                                                       ("rate-limited", E)]
    assert "lower in the stack" in ranked[1].explanation
    verdict = explain_error(analyse(RATE), ranked)
    assert (verdict["verdict"], verdict["cause"]) == ("other-cause", "proxy-captures-local")
    assert "rank 2" in verdict["message"]


def test_a_candidate_the_live_run_saw_only_as_a_warning_is_raised_by_the_pasted_failure() -> None:
    results = [result("warmup", f("slow-model-load", W, MED), status=Status.WARN)]
    text = "httpx.ReadTimeout: timed out"
    ranked = rank(results, error=analyse(text))
    assert [(d.cause, d.severity, d.probes) for d in ranked] == [
        ("slow-model-load", E, ["warmup", PASTED])]
    assert explain_error(analyse(text), ranked)["verdict"] == "confirmed"
    assert summary(ranked, results)["exit_code"] == 1


def test_unrecognised_text_changes_nothing() -> None:
    results = healthy()
    assert rank(results, error=analyse("something odd")) == rank(results)


def test_the_pasted_entry_fits_the_report_schema() -> None:
    import jsonschema

    from ollama_doctor.report import schema

    (top, *_) = rank(healthy(), error=analyse(RATE))
    assert (top.cause, top.probes) == ("rate-limited", ["error-text"])
    definitions = schema()["$defs"]
    validator = jsonschema.Draft202012Validator({"$defs": definitions,
                                                 **definitions["diagnosis"]})
    assert list(validator.iter_errors(top.to_dict())) == []


def test_the_same_http_answer_read_less_closely_by_a_probe_folds_into_the_pasted_cause() -> None:
    reach = result("reachability", f("not-ollama", C, root={"request": "GET /", "status": 429}))
    text = "ollama._types.ResponseError: rate limit exceeded (status code: 429)"
    ranked = rank([reach], error=analyse(text))
    assert [(d.cause, d.severity, d.confidence) for d in ranked] == [("rate-limited", E, HIGH)]
    assert ranked[0].evidence["explains"][0]["cause"] == "not-ollama"
    assert ranked[0].evidence["reproduced"] is True
    assert explain_error(analyse(text), ranked)["verdict"] == "confirmed"
    # another status in the probe's evidence is another answer: the rules rank both
    other = result("reachability", f("not-ollama", C, root={"status": 200}))
    assert [d.cause for d in rank([other], error=analyse(text))] == ["not-ollama",
                                                                     "rate-limited"]


def test_a_401_on_a_server_that_lets_the_doctor_in_and_lists_cloud_models_is_cloud_signin() -> None:
    results = healthy()
    models = result("models", status=Status.PASS)
    models.facts = {"models": [{"name": "llama3.2:latest"}, {"name": "gpt-oss:120b-cloud"}]}
    text = ("requests.exceptions.HTTPError: 401 Client Error: Unauthorized for url: "
            "http://localhost:11434/api/chat")
    (top, *_) = rank([*results, models], error=analyse(text))
    assert (top.cause, top.severity, top.confidence) == ("cloud-signin-required", E, MED)
    assert "gpt-oss:120b-cloud" in top.explanation
    # without a cloud model the text's own first reading stays
    assert rank(results, error=analyse(text))[0].cause == "auth-required"


# ollama-js prints the body and the status, never the URL it called (ResponseError).
OLLAMA_JS_502 = ("file:///app/node_modules/ollama/dist/browser.mjs:73\n"
                 "ResponseError: <html>\n<head><title>502 Bad Gateway</title></head>\n</html>\n"
                 "    at checkOk (file:///app/node_modules/ollama/dist/browser.mjs:73:9) {\n"
                 "  status_code: 502\n}")


def test_a_run_that_probed_the_default_because_the_text_shows_no_server_says_so() -> None:
    from ollama_doctor.target import parse_target

    default = parse_target(None)
    (top, *_) = rank(healthy(), error=analyse(OLLAMA_JS_502), target=default)
    assert (top.cause, top.probes) == ("bad-gateway", [PASTED])
    note = ("The error does not show which server the client called; probed "
            "http://127.0.0.1:11434 (the default); rerun with --host URL if your client uses "
            "another.")
    assert top.explanation.endswith(note)
    assert explain_error(analyse(OLLAMA_JS_502), [top], target=default)["message"].endswith(note)
    # a server the user named, or one the text shows: nothing to say
    named = parse_target("http://ollama.example.com", "option")
    (top, *_) = rank(healthy(), error=analyse(OLLAMA_JS_502), target=named)
    assert "does not show which server" not in top.explanation
    shown = "requests.exceptions.HTTPError: 502 Server Error: Bad Gateway for url: http://a:80/x"
    (top, *_) = rank(healthy(), error=analyse(shown), target=default)
    assert "does not show which server" not in top.explanation


def test_a_pasted_http_answer_where_nothing_listens_names_another_server() -> None:
    from ollama_doctor.target import parse_target

    results = [result("reachability", f("server-not-running", E))]
    ranked = rank(results, error=analyse(OLLAMA_JS_502), target=parse_target(None))
    assert [d.cause for d in ranked][:2] == ["server-not-running", "bad-gateway"]
    verdict = explain_error(analyse(OLLAMA_JS_502), ranked, target=parse_target(None))
    assert verdict["verdict"] == "other-cause"
    assert "Your client got an HTTP 502 answer, so it reached a server" in verdict["message"]
    assert verdict["message"].endswith("if your client uses another.")


def test_a_text_that_names_what_a_status_meant_leads_a_probe_that_saw_only_the_status() -> None:
    """openai-node prints Ollama's message with the 500; a probe that got the same 500 and read
    only its status (server-error) is the same answer, read less closely."""
    text = "InternalServerError: 500 llama-server process has terminated: exit status 2"
    seen = f("server-error", E, HIGH, code=500, reply={"status": 500})
    ranked = rank([result("v1", seen)], error=analyse(text))
    top = ranked[0]
    assert (top.cause, top.probes, top.severity) == ("runner-crashed", ["v1", PASTED], E)
    assert [e["cause"] for e in top.evidence["explains"]] == ["server-error"]
    assert [d.cause for d in ranked if d.severity.rank >= E.rank] == ["runner-crashed"]
    # a text that shows only the status reads no more than the probe: the probe's answer stands
    bare = "requests.exceptions.HTTPError: 500 Server Error: Internal Server Error for url: x"
    assert rank([result("v1", seen)], error=analyse(bare))[0].cause == "server-error"
    # another status is another answer
    other = f("server-error", E, HIGH, code=503, reply={"status": 503})
    assert rank([result("v1", other)], error=analyse(text))[0].cause == "server-error"


def test_a_gateway_page_the_live_run_read_as_a_server_error_is_the_gateway_timeout() -> None:
    text = "openai.InternalServerError: Error code: 504"
    ranked = rank([result("v1", f("server-error", E, HIGH, code=504, reply={"status": 504})),
                   result("warmup", f("gateway-timeout", E, MED))], error=analyse(text))
    assert [d.cause for d in ranked] == ["gateway-timeout"]
    assert set(ranked[0].probes) == {"warmup", "v1", PASTED}


def test_an_inferred_container_localhost_is_a_note_once_another_cause_is_proved() -> None:
    """A refused loopback target in a container brings container-localhost on every run; a
    proved cause (here: the server listens on ::1 only) makes it a note, and its check stops
    failing for it, so `container ✗` does not sit beside the real answer."""
    from ollama_doctor.diagnosis import adjusted

    container = result("container", Finding("container-localhost", E, "in a container",
                                            {}, [FixStep("rerun", ("ollama-doctor check",))],
                                            MED))
    runs = [result("reach", f("server-not-running", C), f("ipv6-localhost", E, HIGH)),
            container]
    ranked = rank(runs)
    by_cause = {d.cause: d for d in ranked}
    assert by_cause["container-localhost"].severity is INFO
    assert ranked[-1].cause == "container-localhost"
    assert "Noted only: the reach probe proved ipv6-localhost" in \
        by_cause["container-localhost"].explanation
    assert "ollama-doctor check" not in [c for s in by_cause["container-localhost"].fix
                                         for c in s.commands]
    checks = {r.id: r for r in adjusted(runs)}
    assert checks["container"].status is Status.PASS
    assert checks["reach"].status is Status.FAIL
    twice = adjusted(adjusted(runs))
    assert [r.findings for r in twice] == [r.findings for r in adjusted(runs)]


@pytest.mark.parametrize(("others", "kept"), [
    ([f("server-not-running", C, HIGH)], E),  # the refusal itself proves nothing else
    ([f("high-latency", W, HIGH)], E),  # a warning is not the answer
    ([f("bound-to-loopback", E, MED)], E),  # inferred, not proved
    ([f("wrong-port-scheme", E, HIGH)], INFO),
    ([f("proxy-captures-local", C, HIGH)], INFO),
])
def test_what_demotes_an_inferred_container_localhost(others: list[Finding],
                                                      kept: Severity) -> None:
    ranked = rank([result("reach", *others),
                   result("container", f("container-localhost", E, MED))])
    assert next(d for d in ranked if d.cause == "container-localhost").severity is kept


def test_a_container_localhost_proved_by_discovery_stays_and_leads() -> None:
    ranked = rank([result("reach", f("server-not-running", C), f("wrong-port-scheme", E)),
                   result("container", f("container-localhost", C, HIGH))])
    assert (ranked[0].cause, ranked[0].severity) == ("container-localhost", C)
