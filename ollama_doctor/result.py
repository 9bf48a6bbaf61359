"""Plain data passed between probes, the runner, the diagnosis and the renderers.

Nothing here does I/O. Every type turns into JSON through ``to_dict`` so that the text, Markdown
and JSON outputs are rendered from the same objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Status(str, Enum):
    """Outcome of one probe. A closed set, like flutter doctor's validation types."""

    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"
    ERROR = "error"  # the probe itself crashed; its evidence is missing


class Severity(str, Enum):
    """How bad a finding is. Ordered: ``Severity.rank`` grows with badness."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self]


_SEVERITY_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.ERROR: 2, Severity.CRITICAL: 3}


class Confidence(str, Enum):
    """How sure the evidence makes us. ``high`` means a probe proved it."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"

    @property
    def rank(self) -> int:
        return {"low": 0, "medium": 1, "high": 2}[self.value]


@dataclass(frozen=True)
class FixStep:
    """One thing to do: a sentence, and commands to copy. Commands are shown, never run.

    ``kind`` says what the commands are (``shell``, ``python``, ``javascript``, ``nginx``,
    ``json``, ``env``, ``systemd``, ``config``; ``text`` for a step without commands), so a
    renderer shows a ``$`` prompt only for shell lines. Left empty, it is taken from the
    commands (``ollama_doctor.remedies.Command`` knows its kind; a plain string is shell).
    """

    text: str
    commands: tuple[str, ...] = ()
    kind: str = ""

    def __post_init__(self) -> None:
        if not self.kind:
            kinds = [str(getattr(getattr(c, "kind", None), "value", "shell"))
                     for c in self.commands]
            object.__setattr__(self, "kind", kinds[0] if kinds else "text")

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "kind": self.kind, "commands": list(self.commands)}


@dataclass
class Finding:
    """Evidence for one cause from one probe.

    ``code`` is the HTTP status the probe actually observed for this cause (a proxy's own 403,
    say); ``None`` lets the diagnosis fall back to the catalogue's typical code.
    """

    cause: str
    severity: Severity
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)
    fix: list[FixStep] = field(default_factory=list)
    confidence: Confidence = Confidence.HIGH
    code: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "cause": self.cause,
            "severity": self.severity.value,
            "confidence": self.confidence.value,
            "message": self.message,
            "code": self.code,
            "evidence": self.evidence,
            "fix": [step.to_dict() for step in self.fix],
        }


class Facts(dict[str, Any]):
    """A probe's JSON facts, carrying the typed evidence (``ollama_doctor.facts``) other
    probes read. It is written to JSON as the plain dict it is; ``typed`` rides along with the
    same object from ``Outcome`` to ``ProbeResult``."""

    typed: object | None = None


@dataclass
class Outcome:
    """What a probe's ``run`` returns; the runner adds id, title and timing.

    ``evidence`` is the probe's typed facts for other probes (a dataclass from
    ``ollama_doctor.facts``), handed out by ``Context.facts``; the JSON report never shows it
    apart from ``facts``, whose keys it mirrors.
    """

    status: Status
    summary: str
    facts: dict[str, Any] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    blocked_by: str | None = None  # a probe that skips itself because another one failed
    evidence: object | None = None

    def __post_init__(self) -> None:
        if self.evidence is not None:
            self.with_evidence(self.evidence)

    def with_evidence(self, evidence: object) -> Outcome:
        """Attach the typed facts other probes read (this outcome, for chaining)."""
        carried = self.facts if isinstance(self.facts, Facts) else Facts(self.facts)
        carried.typed = self.evidence = evidence
        self.facts = carried
        return self

    @classmethod
    def from_findings(cls, summary: str, facts: dict[str, Any], findings: list[Finding], *,
                      floor: Status = Status.PASS, blocked_by: str | None = None,
                      evidence: object | None = None) -> Outcome:
        """The one status rule: the worst finding's severity gives the probe's status.

        An error or critical finding fails the probe, a warning warns, info passes. ``floor``
        is the least the status may be whatever the findings say: ``Status.WARN`` when part of
        the input could not be read (an unreadable file is never a clean pass).
        """
        return cls(status_of(findings, floor=floor), summary, facts, findings,
                   blocked_by=blocked_by, evidence=evidence)


def status_of(findings: list[Finding], *, floor: Status = Status.PASS) -> Status:
    """The status the worst of ``findings`` gives, never better than ``floor`` (PASS or WARN)."""
    worst = max((f.severity.rank for f in findings), default=-1)
    if worst >= Severity.ERROR.rank:
        return Status.FAIL
    if worst >= Severity.WARNING.rank or floor is Status.WARN:
        return Status.WARN
    return Status.PASS


@dataclass
class ProbeError:
    """A probe that raised: its exception, kept as data."""

    type: str
    message: str
    traceback: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "message": self.message}


@dataclass
class ProbeResult:
    """One probe's complete result as it appears in ``checks[]``."""

    id: str
    title: str
    status: Status
    summary: str
    duration_ms: float = 0.0
    facts: dict[str, Any] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    blocked_by: str | None = None
    error: ProbeError | None = None
    prerequisite: bool = False  # ran only because another probe needed it
    evidence: object | None = None  # typed facts for other probes (see Outcome)
    # The run's timeline (runner.py), in ms from the run's start; None when it did not run
    started_ms: float | None = None
    finished_ms: float | None = None
    waited_ms: float | None = None  # ready, waiting for a free worker slot
    prepare_ms: tuple[float, float] | None = None  # its prepare step: started, finished

    def __post_init__(self) -> None:
        if self.evidence is None:  # the runner passes the Outcome's facts object along
            self.evidence = getattr(self.facts, "typed", None)

    @property
    def ok(self) -> bool:
        """True when later probes may build on this one."""
        return self.status in (Status.PASS, Status.WARN)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "status": self.status.value,
            "summary": self.summary,
            "duration_ms": round(self.duration_ms, 1),
            "started_ms": _ms(self.started_ms),
            "finished_ms": _ms(self.finished_ms),
            "waited_ms": _ms(self.waited_ms),
            "prepare": None if self.prepare_ms is None else {
                "started_ms": _ms(self.prepare_ms[0]), "finished_ms": _ms(self.prepare_ms[1])},
            "prerequisite": self.prerequisite,
            "blocked_by": self.blocked_by,
            "error": self.error.to_dict() if self.error else None,
            "facts": self.facts,
            "findings": [f.to_dict() for f in self.findings],
        }


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


@dataclass(frozen=True)
class Retry:
    helps: bool
    advice: str

    def to_dict(self) -> dict[str, Any]:
        return {"helps": self.helps, "advice": self.advice}


@dataclass
class Diagnosis:
    """One ranked cause, merged from every finding that names it."""

    rank: int
    cause: str
    code: int | None
    severity: Severity
    confidence: Confidence
    title: str
    explanation: str
    why_ranked: str
    evidence: dict[str, Any]
    fix: list[FixStep]
    retry: Retry
    probes: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "cause": self.cause,
            "code": self.code,
            "severity": self.severity.value,
            "confidence": self.confidence.value,
            "title": self.title,
            "explanation": self.explanation,
            "why_ranked": self.why_ranked,
            "evidence": self.evidence,
            "fix": [step.to_dict() for step in self.fix],
            "retry": self.retry.to_dict(),
            "probes": self.probes,
        }
