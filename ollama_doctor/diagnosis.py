"""Findings from every probe → one ranked list of causes. Pure: values in, values out.

The ranking rule
----------------
0. **Fact rules** (``ADJUSTMENTS``): evidence from one probe changes how far another probe's
   finding matters. When the user's client reaches the target only through its proxy, a failure
   of the direct path is not what the client hits, so it becomes a note. An inferred
   ``container-localhost`` (a refused loopback target in a container, the host not tried)
   becomes a note once a probe has proved another cause.
1. **Cross-probe rules** (``RULES``): a root cause absorbs the symptoms it explains. When
   a proxy captures local traffic, the 502 it produced is not also a ``bad-gateway``; when
   ``--discover`` proved the host's server answers, ``container-localhost`` absorbs
   ``server-not-running``. Absorbed findings become evidence of the cause that explains them.
2. **One entry per cause**: findings naming the same cause merge; the entry takes the highest
   severity and confidence among them and the evidence of all of them.
3. **Order** by, in turn:
   a. severity (critical, error, warning, info) — what breaks calls before what slows them;
   b. layer (``causes.Layer``: configuration, path, transport, identity, access, model,
      server, performance) — a lower layer blocks every layer above it, so it is the root;
   c. confidence (high, medium, low) — proved before inferred;
   d. registry order of the first probe that found it — stable output.
4. The HTTP ``code`` of an entry is the status a probe observed for it, else the catalogue's
   typical code, else ``None`` (failures below HTTP).
5. Retry advice comes from the cause, which may overrule its code's generic advice.

Each entry says why it ranks where it does (``why_ranked``), built from the same keys.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ollama_doctor.causes import CAUSES, Layer, retry_for
from ollama_doctor.result import (
    Confidence,
    Diagnosis,
    Finding,
    ProbeResult,
    Severity,
    Status,
    status_of,
)

if TYPE_CHECKING:
    from ollama_doctor.errortext import ErrorAnalysis
    from ollama_doctor.target import Target


@dataclass(frozen=True)
class Absorb:
    """When ``root`` is present at ``min_severity`` or worse (and ``min_confidence``), findings
    of each cause in ``symptoms`` are folded into it as evidence."""

    root: str
    symptoms: tuple[str, ...]
    reason: str
    min_confidence: Confidence = Confidence.HIGH
    min_severity: Severity = Severity.ERROR


RULES: tuple[Absorb, ...] = (
    Absorb("proxy-captures-local",
           ("bad-gateway", "server-error", "forbidden", "proxy-blocks", "gateway-timeout",
            "not-ollama", "server-unresponsive"),
           "the proxy produced this answer; the direct path to Ollama works"),
    Absorb("proxy-unreachable", ("server-not-running", "dns-failure"),
           "the client never got past its proxy"),
    Absorb("proxy-blocks", ("dns-failure", "server-not-running", "connect-timeout"),
           "the client goes through the proxy; the direct path is not used"),
    Absorb("proxy-unsupported", ("proxy-unreachable",),
           "the client fails before it uses the proxy"),
    Absorb("container-localhost", ("server-not-running",),
           "the host's server answers; only this container's loopback is empty"),
    Absorb("bound-to-loopback", ("server-not-running",),
           "a server listens, on loopback only"),
    Absorb("ipv6-localhost", ("server-not-running",),
           "the server listens on the other address family"),
    Absorb("memory-limit", ("out-of-memory", "runner-crashed"),
           "the container's memory limit is what the model runs out of"),
    Absorb("out-of-memory", ("runner-crashed", "server-error"),
           "the runner died for lack of memory", min_confidence=Confidence.MEDIUM),
    Absorb("runner-crashed", ("server-error",), "the 500 is the runner's crash"),
    Absorb("slow-model-load", ("gateway-timeout", "high-latency"),
           "the wait is the model loading"),
    Absorb("wrong-port-scheme", ("server-not-running", "server-unresponsive", "not-ollama",
                                 "tls-error"),
           "the client dials the wrong port or protocol"),
    Absorb("origin-forbidden", ("forbidden",), "the 403 is Ollama's CORS check"),
    Absorb("host-forbidden", ("forbidden",), "the 403 is Ollama's Host check"),
    Absorb("cloud-signin-required", ("auth-required",), "the 401 carries Ollama's signin_url"),
    Absorb("wrong-instance", ("model-not-found",),
           "the model exists, on another server than the one answering"),
)


DIRECT_PATH = ("dns-failure", "server-not-running", "connect-timeout", "server-unresponsive")


def _proxy_carries_the_request(results: Sequence[ProbeResult]) -> list[ProbeResult]:
    """The client's proxy is its only way to the target: direct-path failures become notes."""
    proxy = next((r for r in results if r.id == "proxy"), None)
    verdict = ((proxy.facts.get("comparison") or {}).get("verdict") if proxy else None)
    if verdict not in ("proxy-only-path", "proxy-blocks"):
        return list(results)
    out = []
    for result in results:
        if result.id == "proxy" or not any(f.cause in DIRECT_PATH for f in result.findings):
            out.append(result)
            continue
        findings = [
            replace(f, severity=Severity.INFO,
                    message=f"{f.message} This is the direct path only: the client's requests "
                            "go through its proxy, which resolves and connects for it.")
            if f.cause in DIRECT_PATH else f
            for f in result.findings]
        out.append(replace(result, findings=findings))
    return out


def _container_localhost_note(results: Sequence[ProbeResult]) -> list[ProbeResult]:
    """An inferred ``container-localhost`` is a note once a probe proved another cause.

    The container probe infers it from three facts (a container, a loopback target, a refused
    connect), so it comes with every refused loopback run in a container. When another probe
    proved what is wrong (high confidence, error or worse) — a server on the other address
    family, the wrong port, a proxy in the way — it is not the answer: listed as a note, and
    the check that found it no longer fails for it. The refusal itself (``server-not-running``,
    the symptom it may explain) is not such a proof; ``--discover`` finding the host's server
    makes it proved (high confidence), and then it stays as it is.
    """
    cause = "container-localhost"
    symptoms = {s for rule in RULES if rule.root == cause for s in rule.symptoms}
    proved = next(((r.id, f.cause) for r in results for f in r.findings
                   if f.cause != cause and f.cause not in symptoms
                   and f.severity.rank >= Severity.ERROR.rank
                   and f.confidence is Confidence.HIGH), None)
    if proved is None:
        return list(results)
    probe, other = proved
    def inferred(f: Finding) -> bool:
        return (f.cause == cause and f.confidence is not Confidence.HIGH
                and f.severity.rank > Severity.INFO.rank)

    out = []
    for result in results:
        if not any(inferred(f) for f in result.findings):
            out.append(result)
            continue
        findings = [
            replace(f, severity=Severity.INFO, fix=[],
                    message=f"{f.message} Noted only: the {probe} probe proved {other}, which "
                            "comes first; look here only if fixing that does not help.")
            if inferred(f) else f
            for f in result.findings]
        status = status_of(findings) if result.status is Status.FAIL else result.status
        out.append(replace(result, findings=findings, status=status))
    return out


ADJUSTMENTS: tuple[Callable[[Sequence[ProbeResult]], list[ProbeResult]], ...] = (
    _proxy_carries_the_request,
    _container_localhost_note,
)


def adjusted(results: Sequence[ProbeResult]) -> list[ProbeResult]:
    """``results`` after the fact rules (``ADJUSTMENTS``): what ``rank`` ranks, and what a
    report's ``checks[]`` should show, so a check does not fail for a finding the diagnosis
    lists as a note."""
    out = list(results)
    for adjust in ADJUSTMENTS:
        out = adjust(out)
    return out


def rank(results: Sequence[ProbeResult], rules: Iterable[Absorb] = RULES, *,
         error: ErrorAnalysis | None = None, target: Target | None = None) -> list[Diagnosis]:
    """The ranked diagnosis for a run. Skipped probes contribute nothing.

    ``error``, the client error the user pasted, is evidence in its own right: when no
    error-level cause of the live run explains it, it becomes a finding of its own
    (``PASTED``, see ``pasted_finding``) and is ranked with the rest by the same rules.
    ``target``, the server the run probed: when the pasted text shows no server and the run
    fell back to the default, the pasted finding says so (``unshown_target``).
    """
    rules = tuple(rules)
    results = adjusted(results)
    ranked = _rank(results, rules)
    if error is None or not error.recognised:
        return ranked
    generic = _generic_reading(error, results)
    if not generic and explained(error, ranked, rules):
        return ranked
    same = _same_answer(error, results) | generic
    pasted = pasted_result(error, results, ranked, same=bool(same), target=target)
    if same:  # the probes got the very answer the client printed, and read it less closely
        status = error.extracted.get("status")
        rules = (Absorb(pasted.findings[0].cause, tuple(sorted(same)),
                        f"the probes got the same HTTP {status} the client printed",
                        min_confidence=Confidence.LOW), *rules)
    return _rank([*results, pasted], rules)


def _rank(results: Sequence[ProbeResult], rules: tuple[Absorb, ...]) -> list[Diagnosis]:
    tagged = [(idx, result.id, f) for idx, result in enumerate(results) for f in result.findings]
    present: dict[str, tuple[int, int]] = {}
    for _, _, f in tagged:
        best = present.get(f.cause)
        if best is None or (f.severity.rank, f.confidence.rank) > best:
            present[f.cause] = (f.severity.rank, f.confidence.rank)

    absorbed_by: dict[str, tuple[str, str]] = {}
    for rule in rules:
        have = present.get(rule.root)
        if have is None or have[0] < rule.min_severity.rank or have[1] < rule.min_confidence.rank:
            continue
        if rule.root in absorbed_by:
            continue
        for symptom in rule.symptoms:
            if symptom in present and symptom not in absorbed_by and symptom != rule.root:
                absorbed_by[symptom] = (rule.root, rule.reason)

    groups: dict[str, list[tuple[int, str, Finding]]] = {}
    for item in tagged:
        cause_id = item[2].cause
        while cause_id in absorbed_by:
            cause_id = absorbed_by[cause_id][0]
        groups.setdefault(cause_id, []).append(item)

    entries = [_merge(cause_id, items, absorbed_by) for cause_id, items in groups.items()]
    entries.sort(key=lambda e: e[0])
    out: list[Diagnosis] = []
    for position, (_, diag) in enumerate(entries, start=1):
        diag.rank = position
        diag.why_ranked = _why(diag, position, [d for _, d in entries])
        out.append(diag)
    return out


# --------------------------------------------------------------------------------------------
# The pasted error as evidence the live run must answer

PASTED = "error-text"  # the probe id of the pasted error's own finding


def _answers(diag: Diagnosis, candidates: Sequence[str], rules: Iterable[Absorb]) -> bool:
    """A ranked cause explains the pasted error: it is one of the text's candidates, or a root
    that absorbs one of them (a proxy that blocks explains a refused connection)."""
    if diag.cause in candidates:
        return True
    return any(rule.root == diag.cause and set(rule.symptoms) & set(candidates)
               for rule in rules)


def explained(error: ErrorAnalysis, ranked: Sequence[Diagnosis],
              rules: Iterable[Absorb] = RULES) -> bool:
    """Whether the live run found, at error level, a cause that explains the pasted error."""
    rules = tuple(rules)
    return any(d.severity.rank >= Severity.ERROR.rank and _answers(d, error.causes, rules)
               for d in ranked)


def _same_answer(error: ErrorAnalysis, results: Sequence[ProbeResult]) -> set[str]:
    """Live error-level causes outside the text's candidates whose evidence holds an HTTP
    answer with the very status the pasted error shows: the same answer, read less closely
    (a 429 on ``GET /`` is a rate limit, whatever else the probe made of it)."""
    status = error.extracted.get("status")
    if not isinstance(status, int):
        return set()
    return {f.cause for r in results for f in r.findings
            if f.severity.rank >= Severity.ERROR.rank and f.cause not in error.causes
            and status in _statuses(f.evidence)}


# Causes that only say an HTTP status came back (a 5xx, a 403, a 4xx): a text that names what
# the status meant is more precise than a probe that saw the same status without reading it.
GENERIC = frozenset({"server-error", "forbidden", "bad-request"})


def _generic_reading(error: ErrorAnalysis, results: Sequence[ProbeResult]) -> set[str]:
    """Live error-level generic causes (``GENERIC``) holding the very status the pasted error
    shows, when the text itself names a specific cause first: the same answer, which the text
    reads more closely (``500 llama-server process has terminated`` is a runner crash, an
    nginx ``504 Gateway Time-out`` page a gateway's timeout)."""
    status = error.extracted.get("status")
    if not isinstance(status, int) or not error.causes or error.causes[0] in GENERIC:
        return set()
    return {f.cause for r in results for f in r.findings
            if f.cause in GENERIC and f.severity.rank >= Severity.ERROR.rank
            and (f.code == status or status in _statuses(f.evidence))}


def _statuses(evidence: Any, depth: int = 0) -> set[int]:
    if depth > 2 or not isinstance(evidence, dict):
        return set()
    out = {v for k, v in evidence.items() if k == "status" and isinstance(v, int)}
    for value in evidence.values():
        out |= _statuses(value, depth + 1)
    return out


def pasted_result(error: ErrorAnalysis, results: Sequence[ProbeResult],
                  ranked: Sequence[Diagnosis], *, same: bool = False,
                  target: Target | None = None) -> ProbeResult:
    """The pasted error as a failed check of its own, holding ``pasted_finding``."""
    from ollama_doctor.result import Status

    finding = pasted_finding(error, results, ranked, same=same, target=target)
    return ProbeResult(PASTED, "The error your client printed", Status.FAIL, finding.message,
                       findings=[finding])


def pasted_finding(error: ErrorAnalysis, results: Sequence[ProbeResult],
                   ranked: Sequence[Diagnosis], *, same: bool = False,
                   target: Target | None = None) -> Finding:
    """The cause the pasted error shows, at error level with the text's own confidence, saying
    what the live run saw instead, why the two differ and what would confirm it.

    The cause is the first candidate the live run saw as a warning (so the two merge into one
    entry), else the text's first candidate."""
    from ollama_doctor.errortext import hint
    from ollama_doctor.result import FixStep

    seen = {d.cause for d in ranked if d.severity.rank >= Severity.WARNING.rank}
    if error.causes[0] not in GENERIC:
        seen -= GENERIC  # the text names more than the status: its own reading leads
    cause = next((c for c in error.causes if c in seen), error.causes[0])
    cloud = _cloud_models(results)
    relayed = (cause == "auth-required" and "cloud-signin-required" in error.causes
               and cloud and _auth_status(results) == 200)
    if relayed:
        # Nothing in front of this server demands credentials (the doctor's call got in), and
        # local Ollama never checks them: a 401 here is ollama.com's, relayed for a cloud
        # model (server/cloud_proxy.go), whose signin_url the client dropped.
        cause = "cloud-signin-required"
    candidate = next(c for c in error.candidates if c.cause == cause)
    status = error.extracted.get("status")
    entry = CAUSES[cause]
    client = _client_label(error.client)
    others = [c for c in error.causes if c != cause][:3]
    shown = candidate.because.split(": ", 1)[-1]
    if status and str(status) not in shown:
        shown = f"HTTP {status}: {shown}"
    said = (f"{client} printed an error ({shown}) that "
            f"points to {cause}: "
            f"{entry.title[:1].lower()}{entry.title[1:]}"
            + (f" (or {', '.join(others)})" if others and error.confidence != "high" else "")
            + ".")
    if same:
        live = (f"The live run got the same HTTP {status} answer, which its probes read as "
                "another cause (listed under 'explains').")
        why, confirm = "", ""
    elif relayed:
        live = ("The doctor's own call to this server was let in, so nothing in front of it "
                "demands credentials, and local Ollama never checks them; the server lists "
                f"cloud models ({', '.join(cloud[:3])}), whose 401 Ollama relays from "
                "ollama.com.")
        why, confirm = "", hint(cause)
    else:
        live = _live_view(cause, results, ranked)
        why = _why_differs(error, cause, results)
        confirm = hint(cause)
    message = " ".join(part for part in (
        said, live, why, f"To confirm it, {confirm}." if confirm else "",
        unshown_target(error, target)) if part)
    evidence: dict[str, Any] = {
        "pasted": {"client": error.client, "matched": candidate.because,
                   "candidates": error.causes[:5], "confidence": error.confidence},
        "reproduced": same,
    }
    if status is not None:
        evidence["pasted"]["status"] = status
    fix = ([FixStep(f"Confirm it: {confirm}.")] if confirm else []) + list(entry.fix)
    code = status if isinstance(status, int) and status >= 400 and entry.code == status \
        else None
    confidence = (Confidence.HIGH if same else Confidence.MEDIUM if relayed
                  else Confidence(error.confidence))
    return Finding(cause, Severity.ERROR, message, evidence, fix, confidence, code)


def unshown_target(error: ErrorAnalysis | None, target: Target | None) -> str:
    """The sentence a run owes when it probed the default server because the pasted text shows
    none (ollama-js's ``ResponseError`` and node's ``fetch failed`` print no URL): the doctor
    cannot know from the text where the client points."""
    from ollama_doctor.errortext import target_from

    if error is None or target is None or target.source != "default" \
            or target_from(error.extracted) is not None:
        return ""
    return (f"The error does not show which server the client called; probed "
            f"{target.root_url} (the default); rerun with --host URL if your client uses "
            "another.")


def _cloud_models(results: Sequence[ProbeResult]) -> list[str]:
    """The cloud models the server lists (``:cloud`` / ``-cloud`` tags, or a remote host)."""
    import re

    models = next((r.facts.get("models") or [] for r in results if r.id == "models"), [])
    return [str(m.get("name")) for m in models if isinstance(m, dict) and (
        re.search(r"[:-]cloud\b", str(m.get("name") or "")) or m.get("remote_host"))]


def _auth_status(results: Sequence[ProbeResult]) -> Any:
    auth = next((r for r in results if r.id == "auth"), None)
    return ((auth.facts.get("call") or {}) if auth else {}).get("status")


def _client_label(name: str | None) -> str:
    from ollama_doctor.clients import BY_NAME

    family = BY_NAME.get(name or "")
    return f"Your client ({family.label})" if family else "Your client"


def _live_view(cause: str, results: Sequence[ProbeResult],
               ranked: Sequence[Diagnosis]) -> str:
    """What the live run saw instead, and how it relates to the pasted cause."""
    serious = [d for d in ranked if d.severity.rank >= Severity.ERROR.rank]
    if serious:
        other = serious[0]
        if CAUSES[other.cause].layer < CAUSES[cause].layer:
            relation = ("it sits lower in the stack, so it can hide this one: fix it first, "
                        "then rerun with the pasted error")
        else:
            relation = "an independent problem: both need fixing"
        return (f"The live run did not reproduce it; it found {other.cause} instead "
                f"({relation}).")
    auth = next((r for r in results if r.id == "auth"), None)
    call = (auth.facts.get("call") or {}) if auth else {}
    if call.get("status") is not None:
        return (f"The live run did not reproduce it: its call ({call.get('request', 'the API')}"
                f") answered HTTP {call['status']} and no check failed.")
    passed = sum(1 for r in results if r.status.value == "pass")
    return f"The live run did not reproduce it: no check failed ({passed} passed)."


def _why_differs(error: ErrorAnalysis, cause: str, results: Sequence[ProbeResult]) -> str:
    """Why the doctor's calls and the client's can differ, for the pasted cause."""
    from ollama_doctor.clients import BY_NAME

    family = BY_NAME.get(error.client or "")
    auth = next((r for r in results if r.id == "auth"), None)
    facts = auth.facts if auth else {}
    credentials = str((facts.get("client") or {}).get("credentials") or "")
    status = (facts.get("call") or {}).get("status")
    if cause in ("auth-required", "cloud-signin-required") and status == 200:
        if credentials.startswith("OLLAMA_API_KEY"):
            if family is not None and not family.reads_api_key:
                return (f"The doctor sent OLLAMA_API_KEY as a bearer token and got HTTP 200, "
                        f"but {family.label} does not read OLLAMA_API_KEY: its call went "
                        "without the token. Give the token to the client itself (its api_key "
                        "or headers option).")
            return ("The doctor sent OLLAMA_API_KEY and got HTTP 200: the client's own "
                    "environment may lack it, or hold another token.")
        if not credentials:
            return ("The server answered the doctor without credentials: the 401 comes from "
                    "something only on the client's path (a gateway at another URL, or its "
                    "proxy).")
    if cause == "rate-limited":
        return ("A rate limit or quota resets with time, and the doctor's few calls stayed "
                "under it; the pasted 429 is what shows it.")
    if cause in ("slow-model-load", "high-latency", "gateway-timeout"):
        return ("A wait depends on whether the model was already loaded: the doctor's calls may "
                "have found it warm.")
    if cause in ("runner-crashed", "out-of-memory", "memory-limit", "server-error"):
        return ("A crash depends on the model and on the memory free at that moment.")
    if CAUSES[cause].layer <= Layer.SERVER:
        return ("The doctor reached the server from here: the client may run elsewhere (another "
                "container or machine), dial another URL or use other proxy settings.")
    return ""


def _merge(cause_id: str, items: list[tuple[int, str, Finding]],
           absorbed_by: dict[str, tuple[str, str]]) -> tuple[tuple[Any, ...], Diagnosis]:
    entry = CAUSES[cause_id]
    own = [f for _, _, f in items if f.cause == cause_id] or [f for _, _, f in items]
    # The finding that explains the entry: the worst, the surest, then one that carries its own
    # fix (the probe that specialises in the cause, e.g. dns over reachability's generic note).
    lead = max(own, key=lambda f: (f.severity.rank, f.confidence.rank, bool(f.fix)))
    severity = max((f.severity for f in own), key=lambda s: s.rank)
    confidence = max((f.confidence for f in own), key=lambda c: c.rank)
    evidence: dict[str, Any] = {}
    for _, probe_id, finding in items:
        if finding.cause == cause_id:
            for key, value in finding.evidence.items():
                evidence.setdefault(key, value)
        else:
            evidence.setdefault("explains", []).append({
                "cause": finding.cause, "probe": probe_id, "message": finding.message,
                "why": absorbed_by[finding.cause][1]})
    code = next((f.code for f in own if f.code is not None), None)
    if code is None:
        code = next((f.code for _, _, f in items if f.code is not None), None)
    if code is None:
        code = entry.code
    fix = lead.fix or next((f.fix for f in own if f.fix), list(entry.fix))
    first_idx = min(idx for idx, _, _ in items)
    probes = sorted({probe_id for _, probe_id, _ in items}, key=lambda p: [
        pid for _, pid, _ in items].index(p))
    diag = Diagnosis(
        rank=0, cause=cause_id, code=code, severity=severity, confidence=confidence,
        title=entry.title, explanation=lead.message, why_ranked="", evidence=evidence,
        fix=list(fix), retry=retry_for(cause_id, code), probes=probes)
    order = (-severity.rank, int(entry.layer), -confidence.rank, first_idx)
    return order, diag


def _why(diag: Diagnosis, position: int, all_: list[Diagnosis]) -> str:
    layer = CAUSES[diag.cause].layer
    layer_name = Layer(layer).name.lower()
    proved = {"high": "proved by a probe", "medium": "inferred from strong evidence",
              "low": "suggested by weak evidence"}[diag.confidence.value]
    if diag.probes == [PASTED]:
        proved = (f"shown by the error your client printed ({diag.confidence.value} confidence "
                  "from its text), not reproduced by the live run")
    parts = [f"{diag.severity.value} at the {layer_name} layer, {proved}"]
    if position == 1 and len(all_) > 1:
        # notes do not count: "below the other causes" needs another cause worth fixing
        others = [d for d in all_[1:] if d.severity.rank >= Severity.WARNING.rank]
        below = [d for d in others if CAUSES[d.cause].layer > layer]
        if below and diag.severity.rank >= others[0].severity.rank:
            parts.append("it sits below the other causes in the stack, so it blocks them")
    if "explains" in diag.evidence:
        names = sorted({e["cause"] for e in diag.evidence["explains"]})
        parts.append("it explains " + ", ".join(names))
    return "; ".join(parts) + "."


def summary(diagnosis: Sequence[Diagnosis], results: Sequence[ProbeResult], *,
            strict: bool = False) -> dict[str, Any]:
    """``healthy`` / ``degraded`` / ``failing`` and the exit code (0, or 1 when failing).

    A crashed probe makes the run failing: it hid evidence, so the run cannot be called healthy.
    ``strict`` makes warnings fail too.
    """
    crashed = [r.id for r in results if r.status.value == "error"]
    worst = max((d.severity.rank for d in diagnosis), default=-1)
    if worst >= Severity.ERROR.rank or crashed:
        status = "failing"
    elif worst >= Severity.WARNING.rank:
        status = "degraded"
    else:
        status = "healthy"
    exit_code = 1 if status == "failing" or (strict and status == "degraded") else 0
    counts = {s: sum(1 for r in results if r.status.value == s)
              for s in ("pass", "warn", "fail", "skip", "error")}
    top = diagnosis[0] if diagnosis else None
    return {
        "status": status,
        "exit_code": exit_code,
        "top_cause": top.cause if top and top.severity.rank >= Severity.WARNING.rank else None,
        "headline": _headline(top, status),
        "checks": counts,
        "crashed": crashed,
    }


def _headline(top: Diagnosis | None, status: str) -> str:
    if top is None or top.severity.rank < Severity.WARNING.rank:
        return "No problem found: calls to this server should work."
    return top.explanation


def explain_error(analysis: ErrorAnalysis, diagnosis: Sequence[Diagnosis], *,
                  target: Target | None = None) -> dict[str, Any]:
    """How the run explains the error the user pasted.

    ``confirmed``: a cause the live probes found (at warning level or worse) is among the
    error's candidates, or explains one of them.
    ``not-reproduced``: the live run did not find it; the pasted error is the top finding of
    its own (``PASTED``), saying what the run saw instead and what would confirm it.
    ``other-cause``: the probes found an error-level cause the message does not point to; the
    pasted error's own entry, ranked below it, says how the two relate.
    """
    if not analysis.recognised:
        return {"verdict": "unrecognised",
                "message": "The pasted text matches no known client error; every probe ran."}
    out = _explained_by(analysis, diagnosis)
    note = unshown_target(analysis, target)
    if note and note not in out["message"]:
        out["message"] += " " + note
    return out


# Failures to reach the probed server at all: a pasted HTTP answer proves the client reached one.
UNREACHED = ("server-not-running", "connect-timeout", "dns-failure", "server-unresponsive")


def _explained_by(analysis: ErrorAnalysis, diagnosis: Sequence[Diagnosis]) -> dict[str, Any]:
    from ollama_doctor.errortext import hint

    candidates = analysis.causes
    hints = [{"cause": c, "hint": hint(c)} for c in candidates if hint(c)]
    for diag in diagnosis:
        live = [p for p in diag.probes if p != PASTED]
        if live and diag.severity.rank >= Severity.WARNING.rank and _answers(
                diag, candidates, RULES):
            return {"verdict": "confirmed", "cause": diag.cause, "rank": diag.rank,
                    "message": f"The pasted error is explained by {diag.cause} (rank "
                               f"{diag.rank}): {diag.explanation}"}
    pasted = next((d for d in diagnosis if d.probes == [PASTED]), None)
    serious = [d for d in diagnosis if d.severity.rank >= Severity.ERROR.rank]
    if serious and (pasted is None or serious[0] is not pasted):
        other = serious[0]
        message = (f"The pasted error points to {', '.join(candidates[:3])}, but the probes "
                   f"found {other.cause} instead; fix that first.")
        status = analysis.extracted.get("status")
        if isinstance(status, int) and other.cause in UNREACHED:
            message = (f"The pasted error points to {', '.join(candidates[:3])}, but the probes "
                       f"found {other.cause} where they looked. Your client got an HTTP "
                       f"{status} answer, so it reached a server: most likely not the one "
                       "probed here.")
        if pasted is not None:
            message += f" The pasted error stays at rank {pasted.rank}: {pasted.explanation}"
        out: dict[str, Any] = {"verdict": "other-cause", "cause": other.cause, "hints": hints,
                               "message": message}
        return out
    if pasted is not None:
        return {"verdict": "not-reproduced", "cause": pasted.cause, "rank": pasted.rank,
                "hints": hints, "message": pasted.explanation}
    return {"verdict": "not-reproduced", "hints": hints,
            "message": "The probes could not reproduce the pasted error from here: "
                       f"it points to {', '.join(candidates[:3])}."}
