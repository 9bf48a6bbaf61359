"""Decoding request bodies the way Ollama's Go handlers do, errors included.

gin's ``ShouldBindJSON`` reads the first JSON value with ``encoding/json`` and answers 400 with
the decoder's own message (``invalid character 'x' looking for beginning of value``,
``unexpected EOF``, ``json: cannot unmarshal string into Go struct field …``); ``keep_alive``
goes through ``api.Duration.UnmarshalJSON`` and Go's ``time.ParseDuration``
(``docs/ollama-wire.md`` §1.6, §2.2).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

from .wire import HTTPError

_QUOTE_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    "\\": "\\\\",
    "'": "\\'",
    '"': '"',
}


def _quote_char(c: str) -> str:
    """encoding/json's ``quoteChar``."""
    if c in _QUOTE_ESCAPES:
        return f"'{_QUOTE_ESCAPES[c]}'"
    code = ord(c)
    if code < 0x20 or code == 0x7F:
        return f"'\\x{code:02x}'"
    if not c.isprintable():
        return f"'\\u{code:04x}'"
    return f"'{c}'"


class _Stop(Exception):
    """The first syntax error, with Go's message."""


_DIGITS = "0123456789"
_HEX = "0123456789abcdefABCDEF"
_SIMPLE_ESCAPES = '"\\/bfnrt'
_LITERALS = {"t": "true", "f": "false", "n": "null"}


class _Scanner:
    """A recursive-descent copy of encoding/json's scanner, only as far as its error messages.

    ``value`` dispatches on the first character through a table; each production is a small
    method that returns the index after what it consumed or raises :class:`_Stop`.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.n = len(text)
        self.dispatch: dict[str, Callable[[int], int]] = {
            "{": self.object,
            "[": self.array,
            '"': self.string,
            "-": self.number,
            **{d: self.number for d in _DIGITS},
            **{c: self.literal for c in _LITERALS},
        }

    def fail(self, i: int, context: str) -> None:
        raise _Stop(f"invalid character {_quote_char(self.text[i])} {context}")

    def need(self, i: int) -> str:
        if i >= self.n:
            raise _Stop("unexpected EOF")
        return self.text[i]

    def skip(self, i: int) -> int:
        while i < self.n and self.text[i] in " \t\r\n":
            i += 1
        return i

    def digits(self, i: int) -> int:
        while i < self.n and self.text[i] in _DIGITS:
            i += 1
        return i

    def digits_after(self, i: int, context: str) -> int:
        """At least one digit at ``i`` (else Go's ``context`` error), then any more."""
        if self.need(i) not in _DIGITS:
            self.fail(i, context)
        return self.digits(i)

    def value(self, i: int) -> int:
        i = self.skip(i)
        handler = self.dispatch.get(self.need(i))
        if handler is None:
            self.fail(i, "looking for beginning of value")
            return i  # unreachable
        return handler(i)

    def object(self, i: int) -> int:
        i = self.skip(i + 1)
        if self.need(i) == "}":
            return i + 1
        while True:
            if self.text[i] != '"':
                self.fail(i, "looking for beginning of object key string")
            i = self.skip(self.string(i))
            if self.need(i) != ":":
                self.fail(i, "after object key")
            i = self.skip(self.value(i + 1))
            c = self.need(i)
            if c == "}":
                return i + 1
            if c != ",":
                self.fail(i, "after object key:value pair")
            i = self.skip(i + 1)
            self.need(i)

    def array(self, i: int) -> int:
        i = self.skip(i + 1)
        if self.need(i) == "]":
            return i + 1
        while True:
            i = self.skip(self.value(i))
            c = self.need(i)
            if c == "]":
                return i + 1
            if c != ",":
                self.fail(i, "after array element")
            i += 1

    def escape(self, i: int) -> int:
        """``i`` is just after a backslash; return the index after the escape."""
        c = self.need(i)
        if c == "u":
            for _ in range(4):
                i += 1
                if self.need(i) not in _HEX:
                    self.fail(i, "in \\u hexadecimal character escape")
        elif c not in _SIMPLE_ESCAPES:
            self.fail(i, "in string escape code")
        return i + 1

    def string(self, i: int) -> int:
        i += 1
        while True:
            c = self.need(i)
            if c == '"':
                return i + 1
            if c == "\\":
                i = self.escape(i + 1)
            elif ord(c) < 0x20:
                self.fail(i, "in string literal")
            else:
                i += 1

    def number(self, i: int) -> int:
        if self.text[i] == "-":
            i += 1
            if self.need(i) not in _DIGITS:
                self.fail(i, "in numeric literal")
        i = i + 1 if self.text[i] == "0" else self.digits(i)
        if i < self.n and self.text[i] == ".":
            i = self.digits_after(i + 1, "after decimal point in numeric literal")
        if i < self.n and self.text[i] in "eE":
            i += 1
            if i < self.n and self.text[i] in "+-":
                i += 1
            i = self.digits_after(i, "in exponent of numeric literal")
        return i

    def literal(self, i: int) -> int:
        word = _LITERALS[self.text[i]]
        for k in range(1, len(word)):
            if self.need(i + k) != word[k]:
                self.fail(i + k, f"in literal {word} (expecting {_quote_char(word[k])})")
        return i + len(word)


def go_syntax_error(text: str) -> str:
    """The message Go's ``json.Decoder`` gives for the first syntax error in ``text``."""
    try:
        _Scanner(text).value(0)
    except _Stop as stop:
        return str(stop)
    except RecursionError:
        return "exceeded max depth"
    return "unexpected EOF"


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def decode_json(body: bytes) -> Any:
    """Decode the first JSON value like gin's ``ShouldBindJSON`` (trailing bytes ignored)."""
    text = body.decode("utf-8", errors="replace")
    start = 0
    while start < len(text) and text[start] in " \t\r\n":
        start += 1
    if start == len(text):
        raise HTTPError(400, "missing request body")
    try:
        obj, _end = _DECODER.raw_decode(text, start)
    except (ValueError, RecursionError):
        raise HTTPError(400, go_syntax_error(text[start:])) from None
    return obj


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


_KIND_OK: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "bool": lambda v: isinstance(v, bool),
    "*bool": lambda v: isinstance(v, bool),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
    "any": lambda v: True,
}


def _type_error(value: Any, struct: str, path: str, gotype: str) -> str:
    kind = _json_kind(value)
    if kind == "number" and gotype in ("int", "*int"):
        kind = f"number {value!r}"  # strconv failed on the literal: Go quotes it
    return f"json: cannot unmarshal {kind} into Go struct field {struct}.{path} of type {gotype}"


# Go's base64.StdEncoding (padding required, CR/LF skipped): the offset of the first bad byte.
_B64 = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


def base64_error(text: str) -> str | None:
    """``illegal base64 data at input byte N`` (``encoding/base64`` decodeQuantum), or None."""
    src = text.encode()
    n = len(src)
    si = 0
    while si < n:
        got = 0
        while got < 4:
            if si == n:
                return None if got == 0 else f"illegal base64 data at input byte {si - got}"
            c = src[si]
            si += 1
            if c in _B64:
                got += 1
            elif c not in (10, 13):
                if c != 61 or got < 2:  # "=" is padding only after two symbols
                    return f"illegal base64 data at input byte {si - 1}"
                if got == 2:
                    while si < n and src[si] in (10, 13):
                        si += 1
                    if si == n:
                        return f"illegal base64 data at input byte {n}"
                    if src[si] != 61:
                        return f"illegal base64 data at input byte {si - 1}"
                    si += 1
                while si < n and src[si] in (10, 13):
                    si += 1
                return None if si == n else f"illegal base64 data at input byte {si}"
    return None


def _think_error(value: Any) -> str | None:
    """``api.ThinkValue.UnmarshalJSON``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        if value in ("high", "medium", "low", "max"):
            return None
        return (f"invalid think value: {json.dumps(value)} (must be \"high\", \"medium\", "
                '"low", "max", true, or false)')
    return 'think must be a boolean or string ("high", "medium", "low", "max", true, or false)'


_MESSAGE_FIELDS = {
    "role": "string",
    "content": "string",
    "thinking": "string",
    "images": "images",
    "tool_calls": "array",
    "tool_name": "string",
    "tool_call_id": "string",
}


def _images_error(value: Any, struct: str, path: str) -> str | None:
    if not isinstance(value, list):
        return _type_error(value, struct, path, "[]api.ImageData")
    for item in value:
        if isinstance(item, str):
            error = base64_error(item)
            if error:
                return error
        elif item is not None and not isinstance(item, list):
            return _type_error(item, struct, path, "api.ImageData")
    return None


def _ints_error(value: Any, struct: str, name: str) -> str | None:
    """``[]int`` (the deprecated ``context``): each element must be a whole number."""
    if not isinstance(value, list):
        return _type_error(value, struct, name, "[]int")
    for item in value:
        if item is not None and not _KIND_OK["int"](item):
            return _type_error(item, struct, name, "int")
    return None


_OPENAI_MESSAGE_FIELDS = {
    "role": "string",
    "content": "any",
    "reasoning": "string",
    "tool_calls": "array",
    "name": "string",
    "tool_call_id": "string",
}


def _openai_messages_error(value: Any, struct: str) -> str | None:
    """``[]openai.Message``: a plain struct, so Go names it (``Message.messages.role``)."""
    if not isinstance(value, list):
        return _type_error(value, struct, "messages", "[]openai.Message")
    for item in value:
        if item is None:
            continue
        if not isinstance(item, dict):
            return _type_error(item, struct, "messages", "openai.Message")
        for key, sub in item.items():
            name = key.lower()
            kind = _OPENAI_MESSAGE_FIELDS.get(name)
            if kind is None or sub is None or _KIND_OK[kind](sub):
                continue
            gotype = "string" if kind == "string" else "[]openai.ToolCall"
            return _type_error(sub, "Message", f"messages.{name}", gotype)
    return None


def _messages_error(value: Any, struct: str) -> str | None:
    """``[]api.Message``: Message.UnmarshalJSON decodes an Alias type; newer Go names the
    field's full path (``ChatRequest.messages.content``)."""
    if not isinstance(value, list):
        return _type_error(value, struct, "messages", "[]api.Message")
    for item in value:
        if item is None:
            continue
        if not isinstance(item, dict):
            return _type_error(item, struct, "messages", "api.Alias")
        lower = {k: k for k in _MESSAGE_FIELDS}
        for key, sub in item.items():
            name = lower.get(key.lower())
            if name is None or sub is None:
                continue
            kind = _MESSAGE_FIELDS[name]
            path = f"messages.{name}"
            if kind == "images":
                error = _images_error(sub, struct, path)
            elif not _KIND_OK[kind](sub):
                error = _type_error(sub, struct, path, "string" if kind == "string" else
                                    "[]api.ToolCall")
            else:
                error = None
            if error:
                return error
    return None


def bind_json(body: bytes, struct: str, fields: dict[str, tuple[str, str]]) -> dict[str, Any]:
    """Decode a request body into the known fields of a Go struct.

    ``fields`` maps json name -> (kind, Go type for error messages). Like encoding/json, key
    matching is case-insensitive, the last duplicate wins, null leaves the zero value, and the
    first type error is reported.
    """
    obj = decode_json(body)
    if obj is None:
        return {}
    if not isinstance(obj, dict):
        raise HTTPError(
            400, f"json: cannot unmarshal {_json_kind(obj)} into Go value of type api.{struct}"
        )
    out: dict[str, Any] = {}
    error: str | None = None
    for key, value in obj.items():
        name = key.lower()
        if name not in fields:
            continue
        if value is None:
            out.pop(name, None)
            continue
        kind, gotype = fields[name]
        if name == "keep_alive":
            try:
                out[name] = parse_keep_alive(value)
            except ValueError as exc:
                error = error or str(exc)
            continue
        if kind in ("think", "images", "messages", "omessages", "ints"):
            if kind == "ints":
                problem = _ints_error(value, struct, name)
            elif kind == "think":
                problem = _think_error(value)
            elif kind == "images":
                problem = _images_error(value, struct, name)
            elif kind == "messages":
                problem = _messages_error(value, struct)
            else:
                problem = _openai_messages_error(value, struct)
            if problem:
                error = error or problem
                continue
        elif not _KIND_OK[kind](value):
            error = error or _type_error(value, struct, name, gotype)
            continue
        out[name] = value
    if error:
        raise HTTPError(400, error)
    return out


_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def _go_parse_duration(text: str) -> float:
    """Go's ``time.ParseDuration``, in seconds."""
    quoted = json.dumps(text, ensure_ascii=False)
    s, negative = text, False
    if s[:1] in ("-", "+"):
        negative, s = s[0] == "-", s[1:]
    if s == "0":
        return 0.0
    if not s:
        raise ValueError(f"time: invalid duration {quoted}")
    total = 0.0
    while s:
        m = re.match(r"(\d*)(?:\.(\d*))?", s)
        assert m is not None
        whole, frac = m.group(1), m.group(2)
        if not whole and not frac:
            raise ValueError(f"time: invalid duration {quoted}")
        s = s[m.end() :]
        unit_match = re.match(r"[^\d.]*", s)
        unit = unit_match.group(0) if unit_match else ""
        if not unit:
            raise ValueError(f"time: missing unit in duration {quoted}")
        if unit not in _DURATION_UNITS:
            raise ValueError(
                f"time: unknown unit {json.dumps(unit, ensure_ascii=False)} in duration {quoted}"
            )
        total += float(f"{whole or '0'}.{frac or '0'}") * _DURATION_UNITS[unit]
        s = s[len(unit) :]
    return -total if negative else total


def parse_keep_alive(value: Any) -> float:
    """``api.Duration.UnmarshalJSON``: number = seconds, string = Go duration, < 0 = forever."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        gotype = {bool: "bool", list: "[]interface {}", dict: "map[string]interface {}"}
        raise ValueError(f"Unsupported type: '{gotype.get(type(value), 'string')}'")
    seconds = float(value) if not isinstance(value, str) else _go_parse_duration(value)
    return math.inf if seconds < 0 else seconds


# The request structs of api/types.go (v0.33): json name -> (kind, Go type in messages).
_LOGPROBS = {
    "truncate": ("*bool", "bool"),
    "shift": ("*bool", "bool"),
    "_debug_render_only": ("bool", "bool"),
    "logprobs": ("bool", "bool"),
    "top_logprobs": ("int", "int"),
}
GENERATE_FIELDS = {
    "model": ("string", "string"),
    "prompt": ("string", "string"),
    "suffix": ("string", "string"),
    "system": ("string", "string"),
    "template": ("string", "string"),
    "context": ("ints", "[]int"),
    "stream": ("*bool", "bool"),
    "raw": ("bool", "bool"),
    "format": ("any", "json.RawMessage"),
    "keep_alive": ("any", "api.Duration"),
    "images": ("images", "[]api.ImageData"),
    "options": ("object", "map[string]interface {}"),
    "think": ("think", "api.ThinkValue"),
    **_LOGPROBS,
}
CHAT_FIELDS = {
    "model": ("string", "string"),
    "messages": ("messages", "[]api.Message"),
    "stream": ("*bool", "bool"),
    "format": ("any", "json.RawMessage"),
    "keep_alive": ("any", "api.Duration"),
    "tools": ("array", "api.Tools"),
    "options": ("object", "map[string]interface {}"),
    "think": ("think", "api.ThinkValue"),
    **_LOGPROBS,
}
EMBED_FIELDS = {
    "model": ("string", "string"),
    "input": ("any", "interface {}"),
    "keep_alive": ("any", "api.Duration"),
    "truncate": ("*bool", "bool"),
    "dimensions": ("int", "int"),
    "options": ("object", "map[string]interface {}"),
}
EMBEDDINGS_FIELDS = {
    "model": ("string", "string"),
    "prompt": ("string", "string"),
    "keep_alive": ("any", "api.Duration"),
    "options": ("object", "map[string]interface {}"),
}
SHOW_FIELDS = {
    "model": ("string", "string"),
    "name": ("string", "string"),
    "verbose": ("bool", "bool"),
    "system": ("string", "string"),
    "template": ("string", "string"),
    "options": ("object", "map[string]interface {}"),
}
PULL_FIELDS = {
    "model": ("string", "string"),
    "name": ("string", "string"),
    "stream": ("*bool", "bool"),
    "insecure": ("bool", "bool"),
}
# openai.ChatCompletionRequest (openai/openai.go v0.33; it has no max_completion_tokens). Go's
# UnmarshalTypeError names the pointed-to type: a *int field says "of type int".
OPENAI_CHAT_FIELDS = {
    "model": ("string", "string"),
    "messages": ("omessages", "[]openai.Message"),
    "stream": ("bool", "bool"),
    "stream_options": ("object", "openai.StreamOptions"),
    "max_tokens": ("int", "int"),
    "seed": ("int", "int"),
    "stop": ("any", "interface {}"),
    "temperature": ("float", "float64"),
    "frequency_penalty": ("float", "float64"),
    "presence_penalty": ("float", "float64"),
    "top_p": ("float", "float64"),
    "response_format": ("object", "openai.ResponseFormat"),
    "tools": ("array", "[]api.Tool"),
    "reasoning": ("object", "openai.Reasoning"),
    "reasoning_effort": ("string", "string"),
    "logprobs": ("bool", "bool"),
    "top_logprobs": ("int", "int"),
}
