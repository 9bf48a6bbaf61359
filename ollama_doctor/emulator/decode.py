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
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
    "any": lambda v: True,
}


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
        if not _KIND_OK[kind](value):
            error = error or (
                f"json: cannot unmarshal {_json_kind(value)} into Go struct field "
                f"{struct}.{name} of type {gotype}"
            )
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


GENERATE_FIELDS = {
    "model": ("string", "string"),
    "prompt": ("string", "string"),
    "suffix": ("string", "string"),
    "system": ("string", "string"),
    "template": ("string", "string"),
    "context": ("array", "[]int"),
    "stream": ("*bool", "bool"),
    "raw": ("bool", "bool"),
    "format": ("any", "json.RawMessage"),
    "keep_alive": ("any", "api.Duration"),
    "images": ("array", "[]api.ImageData"),
    "options": ("object", "map[string]interface {}"),
    "think": ("any", "api.ThinkValue"),
}
CHAT_FIELDS = {
    "model": ("string", "string"),
    "messages": ("array", "[]api.Message"),
    "stream": ("*bool", "bool"),
    "format": ("any", "json.RawMessage"),
    "keep_alive": ("any", "api.Duration"),
    "tools": ("array", "api.Tools"),
    "options": ("object", "map[string]interface {}"),
    "think": ("any", "api.ThinkValue"),
}
EMBED_FIELDS = {
    "model": ("string", "string"),
    "input": ("any", "interface {}"),
    "keep_alive": ("any", "api.Duration"),
    "truncate": ("*bool", "bool"),
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
}
PULL_FIELDS = {
    "model": ("string", "string"),
    "name": ("string", "string"),
    "stream": ("*bool", "bool"),
    "insecure": ("bool", "bool"),
}
OPENAI_CHAT_FIELDS = {
    "model": ("string", "string"),
    "messages": ("array", "[]openai.Message"),
    "stream": ("bool", "bool"),
    "max_tokens": ("int", "*int"),
    "max_completion_tokens": ("int", "*int"),
    "tools": ("array", "[]api.Tool"),
    "temperature": ("any", "*float64"),
    "seed": ("any", "*int"),
}
