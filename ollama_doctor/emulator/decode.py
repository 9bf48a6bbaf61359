"""Decoding request bodies the way Ollama's Go handlers do, errors included.

gin's ``ShouldBindJSON`` reads the first JSON value with ``encoding/json`` and answers 400 with
the decoder's own message (``invalid character 'x' looking for beginning of value``,
``unexpected EOF``, ``json: cannot unmarshal string into Go struct field …``); ``keep_alive``
goes through ``api.Duration.UnmarshalJSON`` and Go's ``time.ParseDuration``
(``docs/ollama-wire.md`` §1.6, §2.2).

The rules themselves are ``ollama_doctor.godecode`` and the request structs
``ollama_doctor.apifields`` (``data/api_fields.json``): the request checker uses the same two,
so what it predicts and what the emulator answers come from one implementation. Both are pure
and stdlib-only, the only doctor modules the emulator imports.
"""

from __future__ import annotations

from typing import Any

from ollama_doctor.apifields import struct_fields
from ollama_doctor.godecode import (
    GoJSONError,
    decode_first_value,
    field_error,
    go_base64_error,
    keep_alive_seconds,
    match_fields,
    not_object_error,
)

from .wire import HTTPError

__all__ = [
    "CHAT_FIELDS",
    "EMBEDDINGS_FIELDS",
    "EMBED_FIELDS",
    "GENERATE_FIELDS",
    "OPENAI_CHAT_FIELDS",
    "OPENAI_COMPLETION_FIELDS",
    "OPENAI_EMBEDDING_FIELDS",
    "PULL_FIELDS",
    "SHOW_FIELDS",
    "base64_error",
    "bind_json",
    "decode_json",
]

base64_error = go_base64_error  # the name the emulator's callers and tests know


def decode_json(body: bytes) -> Any:
    """Decode the first JSON value like gin's ``ShouldBindJSON`` (trailing bytes ignored)."""
    try:
        return decode_first_value(body.decode("utf-8", errors="replace"))
    except GoJSONError as exc:
        raise HTTPError(400, exc.message) from None


def bind_json(body: bytes, struct: str, fields: dict[str, str], *,
              package: str = "api") -> dict[str, Any]:
    """Decode a request body into the known fields of the Go struct ``package.struct``.

    ``fields`` maps json name -> Go type (``apifields``). Like encoding/json, key matching is
    case-insensitive, the last duplicate wins, null leaves the zero value, and the first type
    error is reported. ``keep_alive`` comes back as seconds (``math.inf`` = forever).
    """
    obj = decode_json(body)
    if obj is None:
        return {}
    if not isinstance(obj, dict):
        raise HTTPError(400, not_object_error(obj, f"{package}.{struct}"))
    out: dict[str, Any] = {}
    error: str | None = None
    for name, value in match_fields(obj, fields):
        if value is None:
            out.pop(name, None)
            continue
        problem = field_error(value, fields[name], struct, name)
        if problem:
            error = error or problem
        elif name == "keep_alive":
            out[name] = keep_alive_seconds(value)
        else:
            out[name] = value
    if error:
        raise HTTPError(400, error)
    return out


# The request structs (api/types.go, openai/openai.go v0.33): json name -> Go type.
GENERATE_FIELDS = struct_fields("/api/generate")
CHAT_FIELDS = struct_fields("/api/chat")
EMBED_FIELDS = struct_fields("/api/embed")
EMBEDDINGS_FIELDS = struct_fields("/api/embeddings")
SHOW_FIELDS = struct_fields("/api/show")
OPENAI_CHAT_FIELDS = struct_fields("/v1/chat/completions")
OPENAI_COMPLETION_FIELDS = struct_fields("/v1/completions")
OPENAI_EMBEDDING_FIELDS = struct_fields("/v1/embeddings")
# api.PullRequest: not a body the request checker reads, so not in the data file.
PULL_FIELDS = {
    "model": "string",
    "name": "string",
    "stream": "*bool",
    "insecure": "bool",
}
