"""Decoding a request body the way Ollama's Go handlers do, error messages included.

One implementation, used by the request checker (``request_check``: what Ollama will answer)
and by the emulator (``emulator.decode``: what it answers). Pure and stdlib-only.

How Ollama v0.33 reads a body (``server/routes.go`` handlers, ``middleware/openai.go``):

- gin's ``ShouldBindJSON`` reads the first JSON value with Go's ``encoding/json`` (trailing
  bytes ignored). An empty body is answered ``missing request body`` (the handlers'
  ``errors.Is(err, io.EOF)`` case); a syntax error with the decoder's own message
  (``invalid character 'x' looking for beginning of value``, ``unexpected EOF``).
- Keys match the struct's fields case-insensitively, unknown keys are ignored, ``null`` leaves
  the zero value, and the first type error is reported as Go's ``UnmarshalTypeError``:
  ``json: cannot unmarshal string into Go struct field GenerateRequest.stream of type bool``.
  A number that does not fit an integer field keeps its literal (``number 1.5``).
- ``[]byte`` fields (``api.ImageData``) are base64 (``encoding/base64`` ``decodeQuantum``:
  ``illegal base64 data at input byte N``); ``keep_alive`` goes through
  ``api.Duration.UnmarshalJSON`` and ``time.ParseDuration``; ``think`` through
  ``api.ThinkValue.UnmarshalJSON``; ``api.Message`` through its own ``UnmarshalJSON`` (an
  ``Alias`` type, so Go names the request's struct and the field's full path).

The structs' fields are data (``apifields``, ``data/api_fields.json``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

from ollama_doctor import apifields

# ---- syntax: encoding/json's scanner, as far as its error messages ---------------------------

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


# ---- the first JSON value ---------------------------------------------------------------------


class GoFloat(float):
    """A JSON number that keeps its literal: Go quotes it in ``number 1.5`` errors."""

    literal: str

    def __new__(cls, literal: str) -> GoFloat:
        obj = super().__new__(cls, literal)
        obj.literal = literal
        return obj


class GoJSONError(ValueError):
    """A body Go's decoder refuses, with Go's message; ``empty`` when there was no value."""

    def __init__(self, message: str, *, empty: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.empty = empty


def _reject_constant(name: str) -> Any:
    raise ValueError(name)  # NaN and Infinity are Python's, not JSON's


_DECODER = json.JSONDecoder(parse_float=GoFloat, parse_constant=_reject_constant)


def decode_first_value(text: str) -> Any:
    """The first JSON value in ``text`` as ``ShouldBindJSON`` reads it (trailing bytes ignored).

    Numbers with a fraction or exponent are :class:`GoFloat` (their literal is kept). Raises
    :class:`GoJSONError` with Go's message.
    """
    start = 0
    while start < len(text) and text[start] in " \t\r\n":
        start += 1
    if start == len(text):
        raise GoJSONError("missing request body", empty=True)
    try:
        obj, _end = _DECODER.raw_decode(text, start)
    except (ValueError, RecursionError):
        raise GoJSONError(go_syntax_error(text[start:])) from None
    return obj


# ---- type errors ------------------------------------------------------------------------------


def json_kind(value: Any) -> str:
    """The JSON kind Go names in ``cannot unmarshal KIND into …``."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def go_type_name(value: Any) -> str:
    """``reflect.TypeOf`` (fmt's ``%T``) of a value encoding/json decoded into ``any``."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "[]interface {}"
    return "map[string]interface {}"


def _literal(value: Any) -> str:
    if isinstance(value, GoFloat):
        return value.literal
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return repr(value)
    return json.dumps(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_go_int(value: Any) -> bool:
    """Whether ``strconv.ParseInt`` takes the number's literal (no fraction, no exponent)."""
    if not _is_number(value):
        return False
    return isinstance(value, int) or not any(c in _literal(value) for c in ".eE")


def type_error(value: Any, struct: str, path: str, gotype: str) -> str:
    """Go's ``UnmarshalTypeError`` for ``value`` in field ``struct.path`` of ``gotype``."""
    kind = json_kind(value)
    if kind == "number" and gotype in ("int", "uint8"):
        kind = f"number {_literal(value)}"  # strconv failed on the literal: Go quotes it
    return f"json: cannot unmarshal {kind} into Go struct field {struct}.{path} of type {gotype}"


def not_object_error(value: Any, gotype: str) -> str:
    """The error for a body that is JSON but not an object (``gotype``: ``api.ChatRequest``)."""
    return f"json: cannot unmarshal {json_kind(value)} into Go value of type {gotype}"


# ---- base64 (api.ImageData is []byte) ---------------------------------------------------------

# Go's base64.StdEncoding (padding required, CR/LF skipped): the offset of the first bad byte.
_B64 = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
_NEWLINES = (10, 13)
_PAD = 61  # "="


def _skip_newlines(src: bytes, si: int) -> int:
    while si < len(src) and src[si] in _NEWLINES:
        si += 1
    return si


def _padding_error(src: bytes, si: int, got: int) -> str | None:
    """After a "=" at ``si - 1`` with ``got`` symbols in the quantum: the rest must be the
    second "=" (when two symbols came) and then nothing but newlines."""
    n = len(src)
    if got == 2:
        si = _skip_newlines(src, si)
        if si == n:
            return f"illegal base64 data at input byte {n}"
        if src[si] != _PAD:
            return f"illegal base64 data at input byte {si - 1}"
        si += 1
    si = _skip_newlines(src, si)
    return None if si == n else f"illegal base64 data at input byte {si}"


def go_base64_error(text: str) -> str | None:
    """``illegal base64 data at input byte N`` (``encoding/base64`` decodeQuantum), or None."""
    src = text.encode("utf-8")
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
            elif c not in _NEWLINES:
                if c != _PAD or got < 2:  # "=" is padding only after two symbols
                    return f"illegal base64 data at input byte {si - 1}"
                return _padding_error(src, si, got)
    return None


# ---- durations (api.Duration, time.ParseDuration) ---------------------------------------------

_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,  # U+00B5
    "μs": 1e-6,  # U+03BC
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_DURATION_NUMBER = re.compile(r"([0-9]*)(?:\.([0-9]*))?")
_DURATION_UNIT = re.compile(r"[^0-9.]*")


def go_parse_duration(text: str) -> float:
    """Go's ``time.ParseDuration``, in seconds; ``ValueError`` with Go's message."""
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
        number = _DURATION_NUMBER.match(s)
        assert number is not None  # every part is optional
        whole, frac = number.group(1), number.group(2)
        if not whole and not frac:
            raise ValueError(f"time: invalid duration {quoted}")
        s = s[number.end():]
        unit_match = _DURATION_UNIT.match(s)
        unit = unit_match.group(0) if unit_match else ""
        if not unit:
            raise ValueError(f"time: missing unit in duration {quoted}")
        if unit not in _DURATION_UNITS:
            raise ValueError(
                f"time: unknown unit {json.dumps(unit, ensure_ascii=False)} in duration {quoted}")
        total += float(f"{whole or '0'}.{frac or '0'}") * _DURATION_UNITS[unit]
        s = s[len(unit):]
    return -total if negative else total


def go_duration_error(text: str) -> str | None:
    """Go's ``time.ParseDuration`` error for ``text``, or ``None`` when it parses."""
    try:
        go_parse_duration(text)
    except ValueError as exc:
        return str(exc)
    return None


def duration_error(value: Any) -> str | None:
    """``api.Duration.UnmarshalJSON``'s error for a non-null ``keep_alive``, or ``None``."""
    if isinstance(value, str):
        return go_duration_error(value)
    if _is_number(value):
        return None
    return f"Unsupported type: '{go_type_name(value)}'"


def keep_alive_seconds(value: Any) -> float | None:
    """Seconds a valid ``keep_alive`` means (``math.inf`` = forever); ``None`` if invalid.

    A number is seconds, a string a Go duration; below zero means forever (``api.Duration``).
    """
    if duration_error(value) is not None:
        return None
    seconds = go_parse_duration(value) if isinstance(value, str) else float(value)
    return math.inf if seconds < 0 else seconds


# ---- think (api.ThinkValue) -------------------------------------------------------------------


def think_error(value: Any) -> str | None:
    """``api.ThinkValue.UnmarshalJSON``'s error for a non-null ``think``, or ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        if value in apifields.table()["think_levels"]:
            return None
        return (f"invalid think value: {json.dumps(value)} (must be \"high\", \"medium\", "
                '"low", "max", true, or false)')
    return 'think must be a boolean or string ("high", "medium", "low", "max", true, or false)'


# ---- fields -----------------------------------------------------------------------------------


def match_fields(obj: dict[str, Any], fields: dict[str, str]) -> list[tuple[str, Any]]:
    """(field, value) pairs in body order, matched as encoding/json does (case-insensitive)."""
    lower = {name.lower(): name for name in fields}
    out = []
    for key, value in obj.items():
        name = key if key in fields else lower.get(key.lower())
        if name is not None:
            out.append((name, value))
    return out


# Go types whose values must simply be of one JSON kind (a type error otherwise).
_SIMPLE: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "bool": lambda v: isinstance(v, bool),
    "int": is_go_int,
    "float64": _is_number,
    "float32": _is_number,
    "map[string]interface {}": lambda v: isinstance(v, dict),
    "api.Tool": lambda v: isinstance(v, dict),
    "api.ToolCall": lambda v: isinstance(v, dict),
}
_ANYTHING = ("interface {}", "json.RawMessage")
_LISTS = {"api.Tools": "api.Tool"}  # named slice types: their element type


def field_error(value: Any, gotype: str, struct: str, path: str) -> str | None:
    """The error Go's decoder saves for ``value`` in field ``path`` of ``gotype``, or ``None``.

    ``struct`` is the Go struct named in type errors (``GenerateRequest``); ``path`` the
    field's json name, dotted inside nested structs (``messages.content``).
    """
    if value is None:
        return None  # null leaves the zero value
    base = gotype.lstrip("*")
    if base in _ANYTHING:
        return None
    if base in _SIMPLE:
        return None if _SIMPLE[base](value) else type_error(value, struct, path, base)
    special = _SPECIAL.get(base)
    if special is not None:
        return special(value, struct, path)
    if base.startswith("[]") or base in _LISTS:
        return _list_error(value, base, struct, path)
    if base.startswith("openai."):  # openai.StreamOptions, openai.ToolCall, …: a struct
        return None if isinstance(value, dict) else type_error(value, struct, path, base)
    return None


def _list_error(value: Any, base: str, struct: str, path: str) -> str | None:
    if not isinstance(value, list):
        return type_error(value, struct, path, base)
    elem = _LISTS.get(base, base[2:])
    for item in value:
        error = field_error(item, elem, struct, path)
        if error:
            return error
    return None


def _image_error(value: Any, struct: str, path: str) -> str | None:
    if isinstance(value, str):
        return go_base64_error(value)
    if isinstance(value, list):
        return None  # an array of small numbers decodes into []byte too
    return type_error(value, struct, path, "api.ImageData")


def _message_error(which: str, value: Any, struct: str, path: str) -> str | None:
    """One message of ``messages``. Go names the innermost struct being decoded:
    openai.Message is a plain struct (``Message.messages.role``); api.Message decodes through
    its ``Alias`` type, so the error keeps the request's struct (``ChatRequest.messages.content``)
    and a non-object is reported against ``api.Alias``."""
    if not isinstance(value, dict):
        return type_error(value, struct, path, "api.Alias" if which == "api" else "openai.Message")
    spec = apifields.table()["message_fields"][which]
    fields: dict[str, str] = spec["fields"]
    owner = struct if which == "api" else spec["struct"]
    for key, sub in match_fields(value, fields):
        error = field_error(sub, fields[key], owner, f"{path}.{key}")
        if error:
            return error
    return None


_SPECIAL: dict[str, Callable[[Any, str, str], str | None]] = {
    "api.Duration": lambda v, struct, path: duration_error(v),
    "api.ThinkValue": lambda v, struct, path: think_error(v),
    "api.ImageData": _image_error,
    "api.Message": lambda v, struct, path: _message_error("api", v, struct, path),
    "openai.Message": lambda v, struct, path: _message_error("openai", v, struct, path),
}
