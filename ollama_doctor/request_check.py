"""Check a request body the way Ollama parses it, field by field, before it is sent.

``check_request(body, endpoint)`` is pure: it reads the JSON body a user's app sends to one of
``ENDPOINTS`` (guessed from the body when not given) and returns a :class:`RequestReport` whose
findings name, for every problem, either the exact answer Ollama gives (status and body) or what
Ollama silently does instead. ``prediction`` is the answer Ollama gives to the whole body: the
first rejection in the order its handler meets them, or ``None`` when it accepts the body.
``send(body, endpoint, base_url)`` replays the body (bounded) and compares the real answer with
the prediction.

The field table is one data file, ``ollama_doctor/data/api_fields.json``, matching Ollama
v0.33.0 (``api/types.go`` request structs, ``server/routes.go`` handlers, ``openai/openai.go``
and ``middleware/openai.go``). How Ollama reads a body (from that source):

- gin's ``ShouldBindJSON`` decodes with Go's ``encoding/json``: keys match case-insensitively,
  unknown keys are ignored without a word, ``null`` leaves the zero value, and the first type
  error is answered ``400`` with Go's own message (``json: cannot unmarshal string into Go
  struct field GenerateRequest.stream of type bool``). ``[]byte`` fields (images) are base64
  (``illegal base64 data at input byte N``); ``keep_alive`` and ``think`` have their own
  decoders (``api.Duration.UnmarshalJSON``, ``api.ThinkValue.UnmarshalJSON``).
- ``options`` is a free map, read later by ``api.Options.FromMap``: an unknown key only logs
  ``invalid option provided``; a value of the wrong type fails scheduling and is answered
  ``500 option "temperature" must be of type float32`` (``handleScheduleError`` default case).
- ``format`` is checked only when the runner receives the request, after the model loaded
  (``llm/llama_server.go`` ``Completion``): ``500 invalid format: …``.
- ``num_ctx`` above the model's trained context is capped to it (``sched.go``
  ``effectiveContext``); a prompt longer than the context is truncated (``truncating input
  prompt`` in the server log) or, for chat, its oldest messages are dropped (``prompt.go``
  ``chatPrompt``).

Cause ids emitted: ``bad-request``, ``model-capability``, ``model-not-found``,
``prompt-truncated``, ``reload-churn``, ``setting-not-applied``.
"""

from __future__ import annotations

import difflib
import json
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

from ollama_doctor import modelname
from ollama_doctor.result import Confidence, Finding, FixStep, Severity

ENDPOINTS = (
    "/api/generate",
    "/api/chat",
    "/api/embed",
    "/api/embeddings",
    "/api/show",
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/embeddings",
)
CHARS_PER_TOKEN = 4  # the estimate: about four characters of English text per token
MAX_BODY_BYTES = 8 * 1024 * 1024  # larger bodies are refused before parsing


# Every rule: (id, Ollama's answer — a status or "silent", what it catches). The README's rules
# table is generated from this (``rules_markdown``).
RULES: tuple[tuple[str, str, str], ...] = (
    ("empty-body", "400", "an empty body: `missing request body`"),
    ("not-json", "400", "invalid JSON: Go's syntax error (`invalid character '}' …`)"),
    ("not-object", "400", "JSON that is not an object"),
    ("wrong-type", "400", "a field of the wrong JSON type (`\"stream\": \"false\"`): Go's "
                          "`json: cannot unmarshal …` message"),
    ("keep-alive", "400", "`keep_alive` without a unit (`\"300\"`), with a bad unit, or "
                          "not a number/string"),
    ("think-value", "400", "`think` neither true/false nor low/medium/high/max"),
    ("image-not-base64", "400", "an image that is not plain base64 (a `data:` URL): `illegal "
                                "base64 data at input byte N`"),
    ("top-logprobs", "400", "`top_logprobs` outside 0–20"),
    ("model-missing", "400/404", "no model (`model is required`, or `model '' not found` on "
                                 "generate/embed)"),
    ("raw-conflict", "400", "`raw` with template, system or context"),
    ("think-capability", "400", "`think` on a model without the thinking capability"),
    ("tools-capability", "400", "`tools` on a model without the tools capability"),
    ("insert-capability", "400", "`suffix` on a model without the insert capability"),
    ("completion-capability", "400", "generate/chat on an embedding model"),
    ("option-type", "500", "an option of the wrong type (`\"temperature\": \"0.7\"`): "
                           "fails when the model is scheduled"),
    ("format-invalid", "500", "`format` neither \"json\" nor a JSON schema object: fails after "
                              "the model loaded"),
    ("embed-input", "400", "embedding input that is not a string or list of strings (or "
                           "missing on /v1)"),
    ("embed-too-long", "400", "an embedding input longer than the context with `truncate: "
                              "false` (estimate)"),
    ("messages-empty", "400", "/v1/chat/completions without messages"),
    ("message-content", "400", "/v1 message content neither a string nor a list of parts"),
    ("image-url", "400", "/v1 image given by http(s) URL instead of a data URL"),
    ("reasoning-effort", "400", "/v1 reasoning effort Ollama does not map"),
    ("stop-type", "400", "/v1/completions `stop` list with a non-string"),
    ("encoding-format", "400", "/v1/embeddings `encoding_format` other than float/base64"),
    ("unknown-field", "silent", "an unknown or misspelt field (`max_tokens` on /api/generate, "
                                "`option`): ignored; the right name is suggested"),
    ("unknown-option", "silent", "an unknown key in `options`: ignored (logged as `invalid "
                                 "option provided`)"),
    ("server-setting", "silent", "a server setting sent as an option (`num_parallel`): ignored; "
                                 "the OLLAMA_* variable is named"),
    ("runner-option", "silent", "a load-time option (`num_gpu`, `num_batch`, …): a differing "
                                "value reloads the model"),
    ("num-ctx-too-large", "silent", "`num_ctx` above the model's context: capped"),
    ("prompt-too-long", "silent", "a prompt longer than the context (estimate, chars/4): "
                                  "truncated, or oldest messages dropped"),
    ("embed-truncated", "silent", "an embedding input longer than the context: its end is cut"),
    ("message-role", "silent", "a message role other than system/user/assistant/tool"),
    ("vision-capability", "silent", "images for a model without vision: not checked by Ollama "
                                    "v0.33, the model never sees them"),
    ("not-embedding-model", "silent", "embeddings from a model without the embedding "
                                      "capability"),
    ("unload", "silent", "an empty prompt with `keep_alive: 0`: unloads, generates nothing"),
    ("response-format", "silent", "/v1 `response_format` type other than json_object/"
                                  "json_schema: ignored"),
)


def rules_markdown() -> str:
    """The README's table of request rules."""
    lines = [f"Request rules (Ollama v{ollama_version()}):", "",
             "| Rule | Ollama answers | Catches |", "|---|---|---|"]
    lines += [f"| `{rule}` | {answer} | {what} |" for rule, answer, what in RULES]
    return "\n".join(lines)


class RequestCheckError(ValueError):
    """Input the checker cannot work with (unknown endpoint, unreadable file)."""


@lru_cache(maxsize=1)
def table() -> dict[str, Any]:
    """The field table (``data/api_fields.json``)."""
    text = resources.files("ollama_doctor").joinpath("data/api_fields.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def ollama_version() -> str:
    return str(table()["ollama_version"])


# ---- results ----------------------------------------------------------------------------------


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


# ---- Go's JSON decoding -----------------------------------------------------------------------


class _GoFloat(float):
    """A JSON number that keeps its literal: Go quotes it in ``number 1.5`` errors."""

    literal: str

    def __new__(cls, literal: str) -> _GoFloat:
        obj = super().__new__(cls, literal)
        obj.literal = literal
        return obj


def parse_body(text: str | bytes) -> Any:
    """Parse a body as JSON, keeping number literals. Raises ``_Rejected`` as Ollama would."""
    if isinstance(text, bytes):
        if len(text) > MAX_BODY_BYTES:
            raise RequestCheckError(f"body is larger than {MAX_BODY_BYTES} bytes")
        text = text.decode("utf-8", errors="replace")
    if len(text) > MAX_BODY_BYTES:
        raise RequestCheckError(f"body is larger than {MAX_BODY_BYTES} characters")
    stripped = text.lstrip(" \t\r\n")
    if not stripped:
        raise _Rejected("empty-body", "missing request body", None)
    try:
        obj, _end = json.JSONDecoder(parse_float=_GoFloat).raw_decode(stripped)
    except (ValueError, RecursionError):
        # The emulator's copy of encoding/json's scanner gives Go's exact syntax message.
        from ollama_doctor.emulator.decode import go_syntax_error

        raise _Rejected("not-json", go_syntax_error(stripped), None) from None
    return obj


class _Rejected(Exception):
    def __init__(self, rule: str, message: str, field_name: str | None) -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message
        self.field = field_name


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _literal(value: Any) -> str:
    if isinstance(value, _GoFloat):
        return value.literal
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return repr(value)
    return json.dumps(value)


def _is_go_int(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if isinstance(value, int):
        return True
    literal = _literal(value)
    return not any(c in literal for c in ".eE")


def _type_error(value: Any, struct: str, path: str, gotype: str) -> str:
    kind = _kind(value)
    if kind == "number" and gotype in ("int", "uint8"):
        kind = f"number {_literal(value)}"
    return f"json: cannot unmarshal {kind} into Go struct field {struct}.{path} of type {gotype}"


# Go's base64.StdEncoding.Decode (padding required; \r and \n skipped), for the offset Go
# reports in ``illegal base64 data at input byte N``.
_B64 = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


def go_base64_error(text: str) -> str | None:
    """``illegal base64 data at input byte N`` as Go reports it, or ``None`` when valid."""
    src = text.encode("utf-8")
    n, si = len(src), 0
    while si < n:
        j = 0
        while j < 4:
            if si == n:
                if j == 0:
                    return None
                return f"illegal base64 data at input byte {si - j}"
            c = src[si]
            si += 1
            if c in _B64:
                j += 1
                continue
            if c in (10, 13):
                continue
            if c != ord("="):
                return f"illegal base64 data at input byte {si - 1}"
            if j in (0, 1):
                return f"illegal base64 data at input byte {si - 1}"
            if j == 2:
                while si < n and src[si] in (10, 13):
                    si += 1
                if si == n:
                    return f"illegal base64 data at input byte {n}"
                if src[si] != ord("="):
                    return f"illegal base64 data at input byte {si - 1}"
                si += 1
            while si < n and src[si] in (10, 13):
                si += 1
            if si < n:
                return f"illegal base64 data at input byte {si}"
            return None
    return None


_DURATION_UNITS = ("ns", "us", "µs", "μs", "ms", "s", "m", "h")


def go_duration_error(text: str) -> str | None:
    """Go's ``time.ParseDuration`` error for ``text``, or ``None`` when it parses."""
    quoted = json.dumps(text, ensure_ascii=False)
    s = text
    if s[:1] in ("-", "+"):
        s = s[1:]
    if s == "0":
        return None
    if not s:
        return f"time: invalid duration {quoted}"
    while s:
        i = 0
        while i < len(s) and s[i].isdigit():
            i += 1
        whole = i > 0
        frac = False
        if i < len(s) and s[i] == ".":
            i += 1
            k = i
            while i < len(s) and s[i].isdigit():
                i += 1
            frac = i > k
        if not whole and not frac:
            return f"time: invalid duration {quoted}"
        s = s[i:]
        k = 0
        while k < len(s) and s[k] != "." and not s[k].isdigit():
            k += 1
        unit = s[:k]
        if not unit:
            return f"time: missing unit in duration {quoted}"
        if unit not in _DURATION_UNITS:
            unit_q = json.dumps(unit, ensure_ascii=False)
            return f"time: unknown unit {unit_q} in duration {quoted}"
        s = s[k:]
    return None


def keep_alive_seconds(value: Any) -> float | None:
    """Seconds a valid ``keep_alive`` means (``math.inf`` = forever); ``None`` if invalid."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return math.inf if value < 0 else float(value)
    if isinstance(value, str) and go_duration_error(value) is None:
        total, sign, s = 0.0, 1.0, value
        if s[:1] in "+-":
            sign, s = (-1.0 if s[0] == "-" else 1.0), s[1:]
        scale = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0,
                 "m": 60.0, "h": 3600.0}
        num = ""
        unit = ""
        for c in s + "0":
            if c.isdigit() or c == ".":
                if unit:
                    total += float(num or 0) * scale[unit]
                    num, unit = "", ""
                num += c
            else:
                unit += c
        seconds = sign * total
        return math.inf if seconds < 0 else seconds
    return None


def _go_type_name(value: Any) -> str:
    """``reflect.TypeOf`` of a value encoding/json decoded into ``any``."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "[]interface {}"
    return "map[string]interface {}"


def _decode_value(value: Any, gotype: str, struct: str, path: str, pkg: str) -> str | None:
    """The error Go's decoder saves for ``value`` in a field of ``gotype``, or ``None``."""
    if value is None:
        return None
    base = gotype.lstrip("*")
    if base in ("interface {}", "json.RawMessage"):
        return None
    if base == "string":
        return None if isinstance(value, str) else _type_error(value, struct, path, "string")
    if base == "bool":
        return None if isinstance(value, bool) else _type_error(value, struct, path, "bool")
    if base == "int":
        return None if _is_go_int(value) else _type_error(value, struct, path, "int")
    if base in ("float64", "float32"):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return None if ok else _type_error(value, struct, path, base)
    if base == "map[string]interface {}" or base.startswith("openai."):
        ok = isinstance(value, dict)
        return None if ok else _type_error(value, struct, path, base)
    if base == "api.Duration":
        if isinstance(value, str):
            return go_duration_error(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return None
        return f"Unsupported type: '{_go_type_name(value)}'"
    if base == "api.ThinkValue":
        if isinstance(value, bool):
            return None
        if isinstance(value, str):
            if value in table()["think_levels"]:
                return None
            return (f"invalid think value: {json.dumps(value)} (must be \"high\", \"medium\", "
                    "\"low\", \"max\", true, or false)")
        return ('think must be a boolean or string ("high", "medium", "low", "max", true, '
                "or false)")
    if base.startswith("[]") or base == "api.Tools":
        elem = {"api.Tools": "api.Tool"}.get(base, base[2:])
        if not isinstance(value, list):
            return _type_error(value, struct, path, base)
        for item in value:
            error = _decode_elem(item, elem, struct, path, pkg)
            if error:
                return error
        return None
    return None


def _decode_elem(item: Any, elem: str, struct: str, path: str, pkg: str) -> str | None:
    if item is None:
        return None
    if elem == "int":
        return None if _is_go_int(item) else _type_error(item, struct, path, "int")
    if elem == "api.ImageData":
        if isinstance(item, str):
            return go_base64_error(item)
        if isinstance(item, list):
            return None  # an array of small numbers decodes into []byte too
        return _type_error(item, struct, path, "api.ImageData")
    if elem in ("api.Message", "openai.Message"):
        # api.Message has its own UnmarshalJSON (an Alias type): Go names the alias type for
        # a non-object, and the full path for a field inside it.
        which = "api" if elem == "api.Message" else "openai"
        if not isinstance(item, dict):
            gotype = "api.Alias" if which == "api" else "openai.Message"
            return _type_error(item, struct, path, gotype)
        fields = table()["message_fields"][which]["fields"]
        # Go names the innermost struct being decoded: openai.Message is a plain struct
        # ("Message.messages.role"); api.Message decodes through its Alias, so the error keeps
        # the request's struct ("ChatRequest.messages.content").
        owner = struct if which == "api" else table()["message_fields"][which]["struct"]
        for key, sub in _match_fields(item, fields):
            error = _decode_value(sub, fields[key], owner, f"{path}.{key}", pkg)
            if error:
                return error
        return None
    if elem in ("api.Tool", "api.ToolCall", "openai.ToolCall"):
        return None if isinstance(item, dict) else _type_error(item, struct, path, elem)
    return None


def _match_fields(obj: dict[str, Any], fields: dict[str, str]) -> list[tuple[str, Any]]:
    """(field, value) pairs in body order, matched as encoding/json does (case-insensitive)."""
    lower = {name.lower(): name for name in fields}
    out = []
    for key, value in obj.items():
        name = key if key in fields else lower.get(key.lower())
        if name is not None:
            out.append((name, value))
    return out


# ---- helpers for findings ---------------------------------------------------------------------


def _package(spec: dict[str, Any]) -> str:
    return "openai" if spec.get("openai") else "api"


def _error_body(endpoint: str, status: int, message: str) -> Any:
    """Ollama's error body: ``{"error": …}``, or the OpenAI shape on ``/v1``."""
    if endpoint.startswith("/v1/"):
        kind = {400: "invalid_request_error", 404: "not_found_error"}.get(status, "api_error")
        return {"error": {"message": message, "type": kind, "param": None, "code": None}}
    return {"error": message}


class _Builder:
    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.findings: list[Finding] = []
        self.prediction: Answer | None = None

    def reject(self, rule: str, status: int, message: str, stage: str, *, field_name: str | None,
               text: str, cause: str = "bad-request", fix: str = "",
               commands: Sequence[str] = ()) -> None:
        answer = Answer(status, _error_body(self.endpoint, status, message), stage)
        if self.prediction is None:
            self.prediction = answer
        self.findings.append(Finding(
            cause=cause, severity=Severity.ERROR, message=text,
            evidence={"rule": rule, "field": field_name, "endpoint": self.endpoint,
                      "ollama": {"status": status, "body": answer.body, "stage": stage},
                      "silent": None},
            fix=[FixStep(fix, tuple(commands))] if fix else [],
            confidence=Confidence.HIGH, code=status))

    def silent(self, rule: str, behaviour: str, *, field_name: str | None, text: str,
               cause: str = "bad-request", severity: Severity = Severity.WARNING,
               fix: str = "", commands: Sequence[str] = (), estimate: bool = False,
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
            fix=[FixStep(fix, tuple(commands))] if fix else [],
            confidence=Confidence.MEDIUM if estimate else Confidence.HIGH))


# ---- endpoint guess ---------------------------------------------------------------------------


def guess_endpoint(body: Any) -> str:
    """The endpoint a body was most likely written for."""
    if not isinstance(body, dict):
        return "/api/generate"
    keys = {k.lower() for k in body}
    if "messages" in keys:
        openai_only = {"max_tokens", "max_completion_tokens", "response_format", "top_p",
                       "temperature", "frequency_penalty", "presence_penalty", "n",
                       "stream_options", "reasoning_effort", "tool_choice", "logit_bias", "user"}
        if keys & openai_only and "options" not in keys:
            return "/v1/chat/completions"
        return "/api/chat"
    if "input" in keys:
        if "encoding_format" in keys:
            return "/v1/embeddings"
        return "/api/embed"
    if "prompt" in keys:
        if keys & {"max_tokens", "temperature", "top_p", "n", "stream_options", "echo",
                   "best_of", "logprobs"} and "options" not in keys:
            return "/v1/completions"
        return "/api/generate"
    if keys <= {"model", "name", "verbose", "system", "template", "options"} and keys & {
            "model", "name"} and "verbose" in keys:
        return "/api/show"
    return "/api/generate"


def normalise_endpoint(endpoint: str) -> str:
    text = endpoint.strip()
    for prefix in ("http://", "https://"):
        if text.startswith(prefix):
            text = "/" + text[len(prefix):].partition("/")[2]
    text = text.split("?")[0].rstrip("/")
    if not text.startswith("/"):
        text = "/" + text
    if text not in ENDPOINTS:
        raise RequestCheckError(
            f"unknown endpoint {endpoint!r}; valid endpoints: {', '.join(ENDPOINTS)}")
    return text


# ---- the check --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelFacts:
    """What is known about the model (from ``/api/show``, or given by the user)."""

    capabilities: tuple[str, ...] | None = None
    context_length: int | None = None  # the model's trained context
    num_ctx: int | None = None  # the server's default context (OLLAMA_CONTEXT_LENGTH or auto)


def check_request(body: Any, endpoint: str | None = None, *,
                  capabilities: Iterable[str] | None = None,
                  context_length: int | None = None,
                  default_num_ctx: int | None = None) -> RequestReport:
    """Check ``body`` (parsed JSON, or its text/bytes) for ``endpoint``. Pure.

    ``capabilities`` (``/api/show``'s list), ``context_length`` (the model's trained context)
    and ``default_num_ctx`` (the server's default context, 4096 when unknown) enable the
    capability, ``num_ctx`` and truncation rules.
    """
    facts = ModelFacts(tuple(capabilities) if capabilities is not None else None,
                       context_length, default_num_ctx)
    obj: Any
    parse_error: _Rejected | None = None
    if isinstance(body, (str, bytes)):
        try:
            obj = parse_body(body)
        except _Rejected as rejected:
            parse_error, obj = rejected, None
    else:
        obj = body
    guessed = endpoint is None
    ep = guess_endpoint(obj) if endpoint is None else normalise_endpoint(endpoint)
    out = _Builder(ep)
    if parse_error is not None:
        what = ("The body is empty." if parse_error.rule == "empty-body"
                else "The body is not valid JSON.")
        out.reject(parse_error.rule, 400, parse_error.message, "decode", field_name=None,
                   text=f"{what} Ollama answers 400 before looking at any field.",
                   fix="Send one JSON object, encoded with a JSON library rather than by hand.")
    else:
        _check(obj, ep, out, facts)
    return RequestReport(ep, guessed, out.findings, out.prediction, ollama_version())


def _check(obj: Any, ep: str, out: _Builder, facts: ModelFacts) -> None:
    spec = table()["endpoints"][ep]
    struct, pkg = spec["struct"], _package(spec)
    fields: dict[str, str] = spec["fields"]
    if obj is None:
        obj = {}  # a literal null body decodes to the zero struct
    if not isinstance(obj, dict):
        out.reject("not-object", 400,
                   f"json: cannot unmarshal {_kind(obj)} into Go value of type {pkg}.{struct}",
                   "decode", field_name=None,
                   text="The body is JSON but not an object; Ollama answers 400.",
                   fix="Send one JSON object with the request's fields.")
        return
    _decode_fields(obj, ep, struct, pkg, fields, out)
    _unknown_fields(obj, ep, fields, out)
    values = {name: value for name, value in _match_fields(obj, fields) if value is not None}
    if ep.startswith("/v1/"):
        _check_openai(values, ep, out, facts)
    else:
        _check_native(values, ep, out, facts)


def _decode_fields(obj: dict[str, Any], ep: str, struct: str, pkg: str,
                   fields: dict[str, str], out: _Builder) -> None:
    for name, value in _match_fields(obj, fields):
        error = _decode_value(value, fields[name], struct, name, pkg)
        if error is None:
            continue
        rule, text, fix = _decode_rule(name, fields[name], value, error)
        out.reject(rule, 400, error, "decode", field_name=name, text=text, fix=fix)


def _decode_rule(name: str, gotype: str, value: Any, error: str) -> tuple[str, str, str]:
    base = gotype.lstrip("*")
    if base == "api.Duration":
        return ("keep-alive", f"`keep_alive` {json.dumps(value)} is not a duration Ollama reads.",
                'Give a unit ("300s", "10m", "24h"), a number of seconds (300), 0 to unload '
                "at once, or -1 to keep the model loaded.")
    if base == "api.ThinkValue":
        return ("think-value", f"`think` {json.dumps(value)} is not true, false or a level.",
                'Use true, false, "low", "medium", "high" or "max".')
    if error.startswith("illegal base64"):
        return ("image-not-base64", f"An image in `{name}` is not plain base64 ({error}).",
                "Send the file's bytes base64-encoded, without a `data:image/…;base64,` prefix "
                "and without line breaks other than \\n.")
    want = {"string": "a string", "bool": "true or false", "int": "a whole number",
            "float64": "a number", "float32": "a number"}.get(base, f"Go type {base}")
    return ("wrong-type", f"`{name}` has the wrong JSON type: Ollama expects {want}.",
            f"Send `{name}` as {want} (JSON {_json_hint(base)}), not {_kind(value)}.")


def _json_hint(base: str) -> str:
    return {"string": '"text"', "bool": "true", "int": "42", "float64": "0.7",
            "float32": "0.7"}.get(base, "of the documented type")


def _suggest(key: str, ep: str, fields: dict[str, str]) -> str | None:
    foreign: dict[str, str] = table()["foreign_fields"].get(ep, {})
    if key in foreign:
        return foreign[key]
    if key.lower() in foreign:
        return foreign[key.lower()]
    close = difflib.get_close_matches(key.lower(), list(fields), n=1, cutoff=0.75)
    return close[0] if close else None


def _unknown_fields(obj: dict[str, Any], ep: str, fields: dict[str, str], out: _Builder) -> None:
    lower = {name.lower() for name in fields}
    for key in obj:
        if key.lower() in lower:
            continue
        hint = _suggest(key, ep, fields)
        text = f"`{key}` is not a field of {ep}: Ollama ignores it without a word."
        fix = f"Use {hint}." if hint else "Remove it, or use a documented field."
        if hint and hint.startswith("nothing"):
            fix = f"It has no equivalent here ({hint.removeprefix('nothing: ')})."
        out.silent("unknown-field", f"ignored: `{key}` has no effect", field_name=key,
                   text=text, fix=fix, extra={"suggestion": hint})


def _options_checks(options: Any, ep: str, out: _Builder) -> tuple[str, str] | None:
    """Unknown and server-side options (silent); the first type error (500 when scheduled)."""
    if not isinstance(options, dict):
        return None
    known: dict[str, list[str]] = table()["options"]
    server: dict[str, str] = table()["server_settings"]
    first: tuple[str, str] | None = None
    for key, value in options.items():
        if key not in known:
            if key in server:
                where = server[key]
                out.silent("server-setting", f"ignored; logged as `invalid option provided` "
                           f"option={key}", field_name=f"options.{key}",
                           text=f"`options.{key}` is a server setting, not a request option: "
                                "Ollama ignores it.",
                           cause="setting-not-applied",
                           fix=f"Set it where the server starts: {where}.",
                           commands=(f"sudo systemctl edit ollama   # Environment=\"{where}=…\"",)
                           if where.startswith("OLLAMA_") else ())
                continue
            hint = difflib.get_close_matches(key.lower(), list(known), n=1, cutoff=0.75)
            out.silent("unknown-option", f"ignored; logged as `invalid option provided` "
                       f"option={key}", field_name=f"options.{key}",
                       text=f"`options.{key}` is not an option Ollama knows: it is ignored.",
                       fix=f"Use `options.{hint[0]}`." if hint else "Remove it.",
                       extra={"suggestion": f"options.{hint[0]}" if hint else None})
            continue
        gotype, group = known[key]
        error = _option_type_error(key, gotype, value)
        if error and first is None:
            first = (key, error)
        if group == "runner" and not error and key != "num_ctx":
            out.silent("runner-option", "accepted; a value that differs from the loaded "
                       "model's reloads it", field_name=f"options.{key}",
                       text=f"`options.{key}` is fixed when the model loads: a call with another "
                            "value (or none) reloads the model.",
                       cause="reload-churn", severity=Severity.INFO,
                       fix="Send the same value from every client, or leave it to the server "
                           "(CUDA_VISIBLE_DEVICES, OLLAMA_GPU_OVERHEAD, OLLAMA_SCHED_SPREAD).")
    return first


def _option_type_error(key: str, gotype: str, value: Any) -> str | None:
    """``api.Options.FromMap``'s error for one value, or ``None``."""
    if value is None:
        return None
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if gotype in ("int", "*int"):
        return None if number else f"option {json.dumps(key)} must be of type integer"
    if gotype in ("bool", "*bool"):
        ok = isinstance(value, bool)
        return None if ok else f"option {json.dumps(key)} must be of type boolean"
    if gotype == "float32":
        return None if number else f"option {json.dumps(key)} must be of type float32"
    if gotype == "[]string":
        if not isinstance(value, list):
            return f"option {json.dumps(key)} must be of type array"
        if not all(isinstance(v, str) for v in value):
            return f"option {json.dumps(key)} must be of an array of strings"
    return None


def _model_name(values: dict[str, Any], ep: str) -> str:
    if ep == "/api/show":
        return str(values.get("name") or values.get("model") or "")
    return str(values.get("model") or "")


def _full_name(name: str) -> str:
    parsed = modelname.parse(name)
    return f"{parsed.host}/{parsed.namespace}/{parsed.model}:{parsed.tag}"


def _check_native(values: dict[str, Any], ep: str, out: _Builder, facts: ModelFacts) -> None:
    spec = table()["endpoints"][ep]
    caps = facts.capabilities
    name = _model_name(values, ep)
    top = values.get("top_logprobs")
    native_gen = ep in ("/api/generate", "/api/chat")
    if native_gen and isinstance(top, (int, float)) and not 0 <= top <= 20:
        out.reject("top-logprobs", 400, "top_logprobs must be between 0 and 20", "handler",
                   field_name="top_logprobs", text="`top_logprobs` is outside 0–20.",
                   fix="Use a value from 0 to 20.")
    if not name:
        status, message = spec["missing_model"]
        out.reject("model-missing", status, message, "handler", field_name="model",
                   text="The body names no model.",
                   cause="model-not-found" if status == 404 else "bad-request",
                   fix='Add "model": "NAME" with a name `ollama list` shows.',
                   commands=("ollama list",))
    if ep == "/api/show":
        return
    if ep == "/api/embed":  # EmbedHandler checks the input's type after the model reference
        _embed_input(values.get("input"), out)
    chat = ep == "/api/chat"
    empty = not (values.get("messages") if chat else values.get("prompt"))
    keep = values.get("keep_alive")
    if ep in ("/api/generate", "/api/chat"):
        if empty and keep_alive_seconds(keep) == 0:
            out.silent("unload", 'answered 200 with done_reason "unload": the model is '
                       "unloaded, nothing is generated", field_name="keep_alive",
                       text="An empty prompt with keep_alive 0 unloads the model.",
                       severity=Severity.INFO,
                       fix="Send a prompt (or messages) to generate; this body only unloads.")
            return
        if ep == "/api/generate" and values.get("raw") and (
                values.get("template") or values.get("system") or values.get("context")):
            out.reject("raw-conflict", 400,
                       "raw mode does not support template, system, or context", "handler",
                       field_name="raw", text="`raw` cannot be combined with template, system "
                                              "or context.",
                       fix="Drop `raw`, or put the whole formatted prompt in `prompt` alone.")
        _think(values, name, out, caps)
        _capabilities(values, ep, name, out, caps)
        _message_checks(values, out, caps)
    elif caps is not None and ep in ("/api/embed", "/api/embeddings") and \
            "embedding" not in caps:
        out.silent("not-embedding-model", "a completion model computes the vectors from its "
                   "hidden states; they are poor for retrieval", field_name="model",
                   text="The model has no `embedding` capability.", cause="model-capability",
                   fix="Use an embedding model (e.g. nomic-embed-text).")
    first_option = _options_checks(values.get("options"), ep, out)
    if first_option is not None:
        key, error = first_option
        out.reject("option-type", 500, error, "schedule", field_name=f"options.{key}",
                   text=f"`options.{key}` has the wrong JSON type: Ollama fails the call with "
                        "500 when it schedules the model (not 400).",
                   fix=f"Send `options.{key}` as a JSON {_option_hint(key)}.")
    ctx = _num_ctx(values.get("options"), out, facts)
    if ep in ("/api/generate", "/api/chat") and not empty:
        _format(values.get("format"), ep, out)
        _truncation(values, ep, out, ctx)
    if ep == "/api/embed":
        _embed_length(values, out, ctx)


def _option_hint(key: str) -> str:
    gotype = table()["options"][key][0]
    return {"int": "whole number", "*int": "whole number", "float32": "number",
            "*bool": "true/false", "bool": "true/false",
            "[]string": "array of strings"}.get(gotype, "value")


def _embed_input(value: Any, out: _Builder) -> None:
    if value is None or isinstance(value, str):
        return
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return
    out.reject("embed-input", 400, "invalid input type", "handler", field_name="input",
               text="`input` must be a string or an array of strings.",
               fix='Send "input": "text" or "input": ["text", …].')


def _think(values: dict[str, Any], name: str, out: _Builder,
           caps: tuple[str, ...] | None) -> None:
    think = values.get("think")
    wants = think is True or (isinstance(think, str) and think in table()["think_levels"])
    if caps is None or not wants or "thinking" in caps:
        return
    out.reject("think-capability", 400, f"{json.dumps(name)} does not support thinking",
               "handler", field_name="think", cause="model-capability",
               text="`think` is on, but the model cannot think.",
               fix="Drop `think` (or send false), or use a thinking model.",
               commands=(f"ollama show {name}",))


def _capabilities(values: dict[str, Any], ep: str, name: str, out: _Builder,
                  caps: tuple[str, ...] | None) -> None:
    if caps is None:
        return
    chat = ep == "/api/chat"
    if "completion" not in caps:
        what = "chat" if chat else "generate"
        out.reject("completion-capability", 400, f"{json.dumps(name)} does not support {what}",
                   "schedule", field_name="model", cause="model-capability",
                   text=f"The model cannot {what} (an embedding model?).",
                   fix="Use /api/embed for an embedding model, or a chat model here.")
        return
    wanted = ["tools"] if chat and values.get("tools") else []
    if not chat and values.get("suffix"):
        wanted.append("insert")
    missing = [cap for cap in wanted if cap not in caps]
    if missing:
        # CheckCapabilities: "%s %w" of the full name and errors.Join (newline-separated).
        message = f"{_full_name(name)} does not support " + "\n".join(missing)
        field_name = "tools" if "tools" in missing else "suffix"
        out.reject(f"{missing[0]}-capability", 400, message, "schedule", field_name=field_name,
                   cause="model-capability",
                   text=f"The call needs `{missing[0]}`, which the model lacks.",
                   fix=f"Drop `{field_name}`, or use a model with the {missing[0]} capability.",
                   commands=(f"ollama show {name}",))


def _message_checks(values: dict[str, Any], out: _Builder,
                    caps: tuple[str, ...] | None) -> None:
    roles = set(table()["roles"])
    messages = values.get("messages")
    images = bool(values.get("images"))
    if isinstance(messages, list):
        for i, message in enumerate(messages):
            if not isinstance(message, dict):
                continue
            role = message.get("role")
            if isinstance(role, str) and role.lower() not in roles:
                hint = difflib.get_close_matches(role.lower(), sorted(roles), n=1, cutoff=0.5)
                out.silent("message-role", "accepted; the model's template renders only "
                           "system, user, assistant and tool messages, so this one is "
                           "usually dropped", field_name=f"messages[{i}].role",
                           text=f"messages[{i}] has role {role!r}, which no template knows.",
                           fix=f"Use role {hint[0]!r}." if hint else
                           "Use system, user, assistant or tool.",
                           extra={"suggestion": hint[0] if hint else None})
            images = images or bool(message.get("images"))
    if images and caps is not None and "vision" not in caps:
        out.silent("vision-capability", "accepted: Ollama v0.33 does not check the vision "
                   "capability; a model without a vision projector never sees the image",
                   field_name="images", cause="model-capability",
                   text="The call sends images, but the model has no vision capability.",
                   fix="Use a vision model (`ollama show MODEL` lists `vision`).")


def _format(value: Any, ep: str, out: _Builder) -> None:
    if value is None or value == "" or value == "json" or isinstance(value, dict):
        return
    raw = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    quoted = json.dumps(raw, ensure_ascii=False)
    message = f'invalid format: {quoted}; expected "json" or a valid JSON Schema object'
    out.reject("format-invalid", 500, message, "after-load", field_name="format",
               text='`format` is neither "json" nor a JSON schema object; Ollama loads the '
                    "model first, then fails with 500.",
               fix='Send "format": "json", or a JSON schema object such as '
                   '{"type": "object", "properties": {…}}.')


def _num_ctx(options: Any, out: _Builder, facts: ModelFacts) -> int:
    default = facts.num_ctx or 4096
    if not isinstance(options, dict):
        return min(default, facts.context_length) if facts.context_length else default
    value = options.get("num_ctx")
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
        return min(default, facts.context_length) if facts.context_length else default
    num_ctx = int(value)
    if facts.context_length and num_ctx > facts.context_length:
        out.silent("num-ctx-too-large", f"capped to the model's context "
                   f"({facts.context_length} tokens)", field_name="options.num_ctx",
                   text=f"`options.num_ctx` {num_ctx} exceeds the model's trained context "
                        f"{facts.context_length}: Ollama uses {facts.context_length}.",
                   fix=f"Send at most {facts.context_length}, or a model with a longer context.",
                   extra={"num_ctx": num_ctx, "context_length": facts.context_length})
        return facts.context_length
    return num_ctx


def _prompt_chars(values: dict[str, Any], ep: str) -> int:
    if ep == "/api/chat":
        total = 0
        for message in values.get("messages") or []:
            if isinstance(message, dict):
                total += len(str(message.get("content") or ""))
        return total
    return len(str(values.get("prompt") or "")) + len(str(values.get("system") or ""))


def _truncation(values: dict[str, Any], ep: str, out: _Builder, ctx: int) -> None:
    chars = _prompt_chars(values, ep)
    tokens = math.ceil(chars / CHARS_PER_TOKEN)
    if tokens <= ctx:
        return
    if ep == "/api/chat":
        behaviour = ("the oldest messages are dropped until the rest fits (the system message "
                     "and the last message are kept)")
    else:
        behaviour = ("the prompt is cut to the context: its first num_keep tokens and its end "
                     "are kept, the middle is dropped (`truncating input prompt` in the log)")
    out.silent("prompt-too-long", behaviour, field_name="messages" if ep == "/api/chat" else
               "prompt", cause="prompt-truncated",
               text=f"The prompt is about {tokens} tokens (an estimate: {chars} characters / "
                    f"{CHARS_PER_TOKEN}), more than the {ctx}-token context.",
               fix=f"Send `options.num_ctx` of at least {_round_up(tokens)}, or shorten the "
                   "prompt.", commands=(f"OLLAMA_CONTEXT_LENGTH={_round_up(tokens)}",),
               estimate=True, extra={"tokens_estimate": tokens, "context": ctx})


def _round_up(tokens: int) -> int:
    size = 2048
    while size < tokens * 1.25:
        size *= 2
    return size


def _embed_length(values: dict[str, Any], out: _Builder, ctx: int) -> None:
    value = values.get("input")
    texts = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    longest = max((len(t) for t in texts if isinstance(t, str)), default=0)
    tokens = math.ceil(longest / CHARS_PER_TOKEN)
    if tokens <= ctx:
        return
    if values.get("truncate") is False:
        out.reject("embed-too-long", 400, "the input length exceeds the context length",
                   "after-load", field_name="input", cause="prompt-truncated",
                   text=f"An input is about {tokens} tokens (estimate), more than the "
                        f"{ctx}-token context, and `truncate` is false.",
                   fix="Split the input into chunks, or let Ollama truncate it.")
        return
    out.silent("embed-truncated", "the input is cut to the context before embedding",
               field_name="input", cause="prompt-truncated", estimate=True,
               text=f"An input is about {tokens} tokens (estimate), more than the {ctx}-token "
                    "context: its end is not embedded.",
               fix="Split long inputs into chunks below the context length.")


# ---- the OpenAI-compatible layer --------------------------------------------------------------


def _check_openai(values: dict[str, Any], ep: str, out: _Builder, facts: ModelFacts) -> None:
    caps = facts.capabilities
    name = str(values.get("model") or "")
    spec = table()["endpoints"][ep]
    if ep == "/v1/chat/completions":
        messages = values.get("messages")
        if not messages:
            out.reject("messages-empty", 400, "[] is too short - 'messages'", "handler",
                       field_name="messages", text="`messages` is missing or empty.",
                       fix='Send at least one message: [{"role": "user", "content": "…"}].')
            return
        _openai_messages(messages, out)
        effort = values.get("reasoning_effort")
        reasoning = values.get("reasoning")
        if isinstance(reasoning, dict) and isinstance(reasoning.get("effort"), str):
            effort = reasoning["effort"]
        if isinstance(effort, str) and effort and effort not in table()["reasoning_efforts"]:
            allowed = ", ".join(f'"{e}"' for e in table()["reasoning_efforts"][:-1])
            message = (f"invalid reasoning value: {json.dumps(effort)} (must be {allowed}, "
                       'or "none")')
            out.reject("reasoning-effort", 400, message, "handler", field_name="reasoning_effort",
                       text=f"reasoning effort {effort!r} is not one Ollama maps.",
                       fix="Use minimal, low, medium, high, xhigh or none.")
    elif ep == "/v1/completions":
        stop = values.get("stop")
        if isinstance(stop, list):
            for item in stop:
                if not isinstance(item, str):
                    out.reject("stop-type", 400,
                               f"invalid type for 'stop' field: {_go_type_name(item)}",
                               "handler", field_name="stop", text="`stop` holds a non-string.",
                               fix="Send stop sequences as strings.")
                    break
    else:
        fmt = values.get("encoding_format")
        if isinstance(fmt, str) and fmt and fmt.lower() not in ("float", "base64"):
            out.reject("encoding-format", 400,
                       f"Invalid value for 'encoding_format' = {fmt}. Supported values: "
                       "['float', 'base64'].", "handler", field_name="encoding_format",
                       text=f"`encoding_format` {fmt!r} is not float or base64.",
                       fix='Use "float" or "base64".')
        if values.get("input") is None or values.get("input") == []:
            out.reject("embed-input", 400, "invalid input", "handler", field_name="input",
                       text="`input` is missing or empty.",
                       fix='Send "input": "text" or a list of strings.')
    if not name:
        status, message = spec["missing_model"]
        out.reject("model-missing", status, message, "handler", field_name="model",
                   cause="model-not-found" if status == 404 else "bad-request",
                   text="The body names no model.", fix='Add "model": "NAME".')
    if ep == "/v1/embeddings" and values.get("input") not in (None, []):
        _embed_input(values.get("input"), out)
    if caps is not None and ep == "/v1/chat/completions":
        if "completion" not in caps:
            out.reject("completion-capability", 400, f"{json.dumps(name)} does not support chat",
                       "schedule", field_name="model", cause="model-capability",
                       text="The model cannot chat (an embedding model?).",
                       fix="Use /v1/embeddings for an embedding model.")
        elif values.get("tools") and "tools" not in caps:
            out.reject("tools-capability", 400, f"{_full_name(name)} does not support tools",
                       "schedule", field_name="tools", cause="model-capability",
                       text="The call sends tools, but the model cannot call tools.",
                       fix="Drop `tools`, or use a model with the tools capability.")
    _format_openai(values, ep, out)


def _openai_messages(messages: Any, out: _Builder) -> None:
    roles = set(table()["roles"])
    for i, message in enumerate(messages if isinstance(messages, list) else []):
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if content is not None and not isinstance(content, (str, list)):
            out.reject("message-content", 400,
                       f"invalid message content type: {_go_type_name(content)}", "handler",
                       field_name=f"messages[{i}].content",
                       text=f"messages[{i}].content is neither a string nor a list of parts.",
                       fix="Send content as a string, or as [{\"type\": \"text\", …}].")
        if isinstance(content, list):
            for part in content:
                url = part.get("image_url") if isinstance(part, dict) else None
                url = url.get("url") if isinstance(url, dict) else url
                if isinstance(url, str) and url.startswith(("http://", "https://")):
                    out.reject("image-url", 400, "image URLs are not currently supported, "
                               "please use base64 encoded data instead", "handler",
                               field_name=f"messages[{i}].content",
                               text="An image is given by URL; Ollama needs the bytes.",
                               fix="Send a data URL: data:image/png;base64,….")
        role = message.get("role")
        if isinstance(role, str) and role.lower() not in roles:
            out.silent("message-role", "accepted; the template usually drops it",
                       field_name=f"messages[{i}].role",
                       text=f"messages[{i}] has role {role!r}, which no template knows.",
                       fix="Use system, user, assistant or tool "
                           "(\"developer\" is not mapped by Ollama v0.33).")


def _format_openai(values: dict[str, Any], ep: str, out: _Builder) -> None:
    fmt = values.get("response_format")
    if ep != "/v1/chat/completions" or not isinstance(fmt, dict):
        return
    kind = str(fmt.get("type", "")).strip().lower()
    if kind not in ("json_object", "json_schema", "text", ""):
        out.silent("response-format", "ignored: only json_object and json_schema are read",
                   field_name="response_format.type",
                   text=f"response_format type {kind!r} is not one Ollama reads.",
                   fix='Use {"type": "json_object"} or {"type": "json_schema", …}.')


# ---- input and plain text for the CLI ---------------------------------------------------------


def load_body(source: str, stdin: Any = None) -> str:
    """The body text from a file, or from stdin for ``-``; bounded; one-line errors."""
    import sys

    if source == "-":
        stream = stdin if stdin is not None else sys.stdin
        text = stream.read(MAX_BODY_BYTES + 1)
    else:
        try:
            with open(source, encoding="utf-8", errors="replace") as handle:
                text = handle.read(MAX_BODY_BYTES + 1)
        except OSError as exc:
            raise RequestCheckError(f"{source}: {exc.strerror or exc}") from None
    if len(text) > MAX_BODY_BYTES:
        raise RequestCheckError(f"{source}: larger than {MAX_BODY_BYTES} characters")
    return str(text)


def as_text(report: RequestReport, replay: Replay | None = None) -> str:
    """Plain text for ``check --request`` / ``explain --request`` (no colour, no rich)."""
    guessed = " (guessed from the body)" if report.endpoint_guessed else ""
    lines = [f"POST {report.endpoint}{guessed}, checked against Ollama v{report.ollama_version}"]
    if report.prediction is None:
        lines.append("Ollama accepts this body.")
    else:
        body = json.dumps(report.prediction.body, ensure_ascii=False)
        lines.append(f"Ollama answers {report.prediction.status} {body}")
    for finding in report.findings:
        ollama = finding.evidence.get("ollama")
        mark = "✗" if ollama else "!"
        lines.append(f"  {mark} [{finding.evidence.get('rule')}] {finding.message}")
        if ollama:
            lines.append(f"      Ollama: {ollama['status']} "
                         f"{json.dumps(ollama['body'], ensure_ascii=False)}")
        else:
            lines.append(f"      Ollama: {finding.evidence.get('silent')}")
        for step in finding.fix:
            lines.append(f"      Fix: {step.text}")
            lines += [f"        {command}" for command in step.commands]
    if replay is not None:
        if replay.matches:
            lines.append(f"Replayed: the server answered {replay.status}, as predicted.")
        else:
            lines.append("Replayed: " + "; ".join(replay.differences)
                         + (f" ({replay.error})" if replay.error else ""))
    return "\n".join(lines)


# ---- replay -----------------------------------------------------------------------------------


@dataclass
class Replay:
    """The real answer to a replayed body, next to the prediction."""

    status: int | None
    body: Any
    error: str | None
    matches: bool
    differences: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "body": self.body, "error": self.error,
                "matches": self.matches, "differences": self.differences}


def send(body: Any, endpoint: str | None, base_url: str, *, timeout: float = 30.0,
         report: RequestReport | None = None, max_bytes: int = 256 * 1024,
         client: Any = None, headers: Mapping[str, str] | None = None) -> Replay:
    """Replay ``body`` to ``base_url`` + endpoint once and compare with the prediction.

    Streaming is turned off for the replay (``"stream": false``) so one bounded JSON answer
    comes back. For an accepted body only the status class is compared (a 200); for a rejected
    one the status and the whole error body. ``client`` is an ``httpx.Client`` along the
    user's client's path (the CLI passes ``Context.http_client()``: its proxy); it is closed
    here. ``headers`` are sent too (the client's credentials).
    """
    import httpx

    if client is None:
        client = httpx.Client(timeout=timeout, trust_env=False, follow_redirects=False)
    sent = {**dict(headers or {}), "Content-Type": "application/json"}

    report = report or check_request(body, endpoint)
    if isinstance(body, (str, bytes)):
        content = body if isinstance(body, bytes) else body.encode("utf-8")
    else:
        payload = body
        if isinstance(body, dict) and report.prediction is None:
            payload = {**body, "stream": False}
        content = json.dumps(payload).encode("utf-8")
    url = base_url.rstrip("/") + report.endpoint
    deadline = time.monotonic() + timeout  # for the whole exchange, not only each read
    try:
        with client, client.stream("POST", url, content=content, headers=sent) as response:
            raw = b""
            for chunk in response.iter_bytes():
                raw += chunk
                if len(raw) >= max_bytes:
                    raw = raw[:max_bytes]
                    break
                if time.monotonic() > deadline:
                    return Replay(response.status_code, None,
                                  f"the answer took longer than {timeout:g} s", False,
                                  ["no complete answer within the time limit"])
            status = response.status_code
    except httpx.HTTPError as exc:
        return Replay(None, None, f"{type(exc).__name__}: {exc}", False,
                      ["no answer: the request failed"])
    text = raw.decode("utf-8", errors="replace")
    try:
        got: Any = json.loads(text)
    except ValueError:
        got = text
    return _compare(report, status, got)


def _compare(report: RequestReport, status: int, got: Any) -> Replay:
    differences: list[str] = []
    want = report.prediction
    if want is None:
        if status != 200:
            differences.append(f"predicted acceptance (200), got {status}")
    else:
        if status != want.status:
            differences.append(f"predicted status {want.status}, got {status}")
        if got != want.body:
            differences.append(f"predicted body {json.dumps(want.body)}, got "
                               f"{json.dumps(got) if not isinstance(got, str) else got[:200]}")
    return Replay(status, got, None, not differences, differences)
