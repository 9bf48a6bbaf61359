"""Reading a body as Ollama's handler does: JSON syntax, the endpoint, each field's Go type
(``godecode``), and the keys Ollama ignores (with the field meant, where one is close)."""

from __future__ import annotations

import difflib
import json
from typing import Any

from ollama_doctor.apifields import table
from ollama_doctor.godecode import (
    GoJSONError,
    decode_first_value,
    field_error,
    json_kind,
    match_fields,
)
from ollama_doctor.request_check.findings import Builder
from ollama_doctor.request_check.rules import ENDPOINTS, MAX_BODY_BYTES, RequestCheckError


def parse_body(text: str | bytes) -> Any:
    """Parse a body as gin's ``ShouldBindJSON`` does, keeping number literals.

    Raises :class:`Rejected` with Ollama's answer (``missing request body``, Go's syntax error),
    or :class:`RequestCheckError` for a body too large to check.
    """
    if isinstance(text, bytes):
        if len(text) > MAX_BODY_BYTES:
            raise RequestCheckError(f"body is larger than {MAX_BODY_BYTES} bytes")
        text = text.decode("utf-8", errors="replace")
    if len(text) > MAX_BODY_BYTES:
        raise RequestCheckError(f"body is larger than {MAX_BODY_BYTES} characters")
    try:
        return decode_first_value(text)
    except GoJSONError as exc:
        raise Rejected("empty-body" if exc.empty else "not-json", exc.message, None) from None


class Rejected(Exception):
    """A body Ollama refuses before reading any field."""

    def __init__(self, rule: str, message: str, field_name: str | None) -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message
        self.field = field_name


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


def decode_fields(obj: dict[str, Any], struct: str, fields: dict[str, str], out: Builder) -> None:
    """Go's type errors, each a 400 (the first is Ollama's answer)."""
    for name, value in match_fields(obj, fields):
        error = field_error(value, fields[name], struct, name)
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
            f"Send `{name}` as {want} (JSON {_json_hint(base)}), not {json_kind(value)}.")


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


def unknown_fields(obj: dict[str, Any], ep: str, fields: dict[str, str], out: Builder) -> None:
    """Keys no field matches: encoding/json ignores them without a word."""
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
