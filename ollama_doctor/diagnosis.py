"""Findings from every probe → one ranked list of causes. Pure: values in, values out.

The ranking rule
----------------
0. **Fact rules** (``ADJUSTMENTS``): evidence from one probe changes how far another probe's
   finding matters. When the user's client reaches the target only through its proxy, a failure
   of the direct path is not what the client hits, so it becomes a note.
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
from ollama_doctor.result import Confidence, Diagnosis, Finding, ProbeResult, Severity

if TYPE_CHECKING:
    from ollama_doctor.errortext import ErrorAnalysis


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


ADJUSTMENTS: tuple[Callable[[Sequence[ProbeResult]], list[ProbeResult]], ...] = (
    _proxy_carries_the_request,
)


def rank(results: Sequence[ProbeResult], rules: Iterable[Absorb] = RULES) -> list[Diagnosis]:
    """The ranked diagnosis for a run. Skipped probes contribute nothing."""
    for adjust in ADJUSTMENTS:
        results = adjust(results)
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
    parts = [f"{diag.severity.value} at the {layer_name} layer, {proved}"]
    if position == 1 and len(all_) > 1:
        below = [d for d in all_[1:] if CAUSES[d.cause].layer > layer]
        if below and diag.severity.rank >= all_[1].severity.rank:
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


def explain_error(analysis: ErrorAnalysis, diagnosis: Sequence[Diagnosis]) -> dict[str, Any]:
    """How the run explains the error the user pasted.

    ``confirmed``: a ranked cause is among the error's candidates (the first such is named).
    ``other-cause``: the probes found an error-level cause the message does not point to.
    ``not-reproduced``: nothing this run could see explains it; hints say how to rerun so the
    probes can (the right ``--origin``, ``-m``, ``--client-timeout``).
    """
    from ollama_doctor.errortext import hint

    if not analysis.recognised:
        return {"verdict": "unrecognised",
                "message": "The pasted text matches no known client error; every probe ran."}
    candidates = analysis.causes
    for diag in diagnosis:
        if diag.cause in candidates and diag.severity.rank >= Severity.WARNING.rank:
            return {"verdict": "confirmed", "cause": diag.cause, "rank": diag.rank,
                    "message": f"The pasted error is explained by {diag.cause} (rank "
                               f"{diag.rank}): {diag.explanation}"}
    serious = [d for d in diagnosis if d.severity.rank >= Severity.ERROR.rank]
    hints = [{"cause": c, "hint": hint(c)} for c in candidates if hint(c)]
    if serious:
        return {"verdict": "other-cause", "cause": serious[0].cause, "hints": hints,
                "message": f"The pasted error points to {', '.join(candidates[:3])}, but the "
                           f"probes found {serious[0].cause} instead; fix that first."}
    return {"verdict": "not-reproduced", "hints": hints,
            "message": "The probes could not reproduce the pasted error from here: "
                       f"it points to {', '.join(candidates[:3])}."}
