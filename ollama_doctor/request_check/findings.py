"""What the request checker returns: Ollama's answer, the report, and the builder that
collects findings (the first rejection, in the order the handler meets them, is the answer)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ollama_doctor import remedies as R
from ollama_doctor.result import Confidence, Finding, Severity


@dataclass(frozen=True)
class Answer:
    """What Ollama answers: a status and the exact JSON body."""

    status: int
    body: Any
    stage: str  # decode | handler | schedule | after-load

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "body": self.body, "stage": self.stage}


@dataclass
class RequestReport:
    endpoint: str
    endpoint_guessed: bool
    findings: list[Finding] = field(default_factory=list)
    prediction: Answer | None = None
    ollama_version: str = ""

    @property
    def rejected(self) -> bool:
        return self.prediction is not None

    def rules(self) -> list[str]:
        return [str(f.evidence.get("rule")) for f in self.findings]

    def to_dict(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "endpoint_guessed": self.endpoint_guessed,
            "ollama_version": self.ollama_version,
            "prediction": self.prediction.to_dict() if self.prediction else None,
            "findings": [f.to_dict() for f in self.findings],
        }


def error_body(endpoint: str, status: int, message: str) -> Any:
    """Ollama's error body: ``{"error": …}``, or the OpenAI shape on ``/v1``."""
    if endpoint.startswith("/v1/"):
        kind = {400: "invalid_request_error", 404: "not_found_error"}.get(status, "api_error")
        return {"error": {"message": message, "type": kind, "param": None, "code": None}}
    return {"error": message}


class Builder:
    """Collects findings; the first rejection is the prediction (Ollama stops there)."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.findings: list[Finding] = []
        self.prediction: Answer | None = None

    def reject(self, rule: str, status: int, message: str, stage: str, *, field_name: str | None,
               text: str, cause: str = "bad-request", fix: str = "",
               commands: Sequence[R.Command] = ()) -> None:
        answer = Answer(status, error_body(self.endpoint, status, message), stage)
        if self.prediction is None:
            self.prediction = answer
        self.findings.append(Finding(
            cause=cause, severity=Severity.ERROR, message=text,
            evidence={"rule": rule, "field": field_name, "endpoint": self.endpoint,
                      "ollama": {"status": status, "body": answer.body, "stage": stage},
                      "silent": None},
            fix=[R.step(fix, *commands)] if fix else [],
            confidence=Confidence.HIGH, code=status))

    def silent(self, rule: str, behaviour: str, *, field_name: str | None, text: str,
               cause: str = "bad-request", severity: Severity = Severity.WARNING,
               fix: str = "", commands: Sequence[R.Command] = (), estimate: bool = False,
               extra: dict[str, Any] | None = None) -> None:
        evidence: dict[str, Any] = {"rule": rule, "field": field_name,
                                    "endpoint": self.endpoint, "ollama": None,
                                    "silent": behaviour}
        if estimate:
            evidence["estimate"] = True
        if extra:
            evidence.update(extra)
        self.findings.append(Finding(
            cause=cause, severity=severity, message=text, evidence=evidence,
            fix=[R.step(fix, *commands)] if fix else [],
            confidence=Confidence.MEDIUM if estimate else Confidence.HIGH))


@dataclass(frozen=True)
class ModelFacts:
    """What is known about the model (from ``/api/show``, or given by the user)."""

    capabilities: tuple[str, ...] | None = None
    context_length: int | None = None  # the model's trained context
    num_ctx: int | None = None  # the server's default context (OLLAMA_CONTEXT_LENGTH or auto)
