"""What comes from outside is shown, never obeyed: the one place that neutralises text.

A server, a proxy, a log file, a pasted error or the environment can put anything in a string
the doctor prints: ``ESC]0;title BEL`` retitles the terminal, ``ESC[2J`` clears it, an OSC 8
sequence turns text into a link to any URL, U+202E reverses what follows. rich's ``escape()``
stops rich markup, not control bytes, and JSON escapes only C0 characters.

``clean`` (the one function every renderer uses) removes escape sequences — CSI, OSC (up to
BEL or ST, so a link keeps its visible text and loses its target), DCS/SOS/PM/APC strings,
two-byte ESC sequences, their 8-bit C1 forms — then every other C0/C1 control character and
the Unicode bidirectional overrides, the way OpenSSH's ``stravis``-style filtering keeps a
hostile banner off the terminal. Newlines become spaces unless ``keep_newlines``; tabs become
spaces. ``clean_tree`` applies it to every string of a document (dict keys included).

For Markdown (``report.to_markdown``): ``md_text`` escapes HTML (``<``, ``>``, ``&``) and
Markdown punctuation so a server's ``</details>``, ``<script`` or ``[link](…)`` shows as text;
``md_code`` and ``md_fence`` quote text in code spans and blocks with a backtick run longer
than any inside. JSON output keeps the text: JSON escaping is enough there.

Every pattern here is linear in its input: disjoint character classes, no nested quantifiers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ollama_doctor.result import Finding, Severity

_ESCAPES = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"  # CSI, final byte optional (cut off at the end)
    r"|(?:\x1b\]|\x9d)[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"  # OSC, up to BEL or ST
    r"|(?:\x1b[PX^_]|[\x90\x98\x9e\x9f])[^\x1b\x9c]*(?:\x1b\\|\x9c)?"  # DCS SOS PM APC
    r"|\x1b[ -/]*[0-~]?"  # any other ESC sequence (nF, Fp, Fe, Fs)
)
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_NEWLINES = re.compile(r"\r\n|[\r\n\u2028\u2029\x85]")


def clean(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` with no escape sequence and no control character left (see module doc)."""
    if text.isprintable():  # the common case: nothing to do (printable excludes all controls)
        return text
    text = _ESCAPES.sub("", text)
    text = _NEWLINES.sub("\n" if keep_newlines else " ", text)
    text = text.replace("\t", " ")
    return _CONTROLS.sub("", text)


def clean_tree(value: Any, *, keep_newlines: bool = False) -> Any:
    """``clean`` on every string in a JSON-like document (keys too); other values unchanged."""
    if isinstance(value, str):
        return clean(value, keep_newlines=keep_newlines)
    if isinstance(value, dict):
        return {clean(k) if isinstance(k, str) else k: clean_tree(v, keep_newlines=keep_newlines)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean_tree(v, keep_newlines=keep_newlines) for v in value]
    return value


# Inline punctuation that can start emphasis, code, links or table cells; block markers
# (``#``, ``-``, ``+``, digits and ``.``) matter only at the start of the text.
_MD_SPECIAL = re.compile(r"[\\`*_\[\]|~]")
_MD_LEADING = re.compile(r"^(\d*)([#+=.)-])")


MD_TEXT_CHARS = 3000  # escaped, at most 5 × this: a report line stays under 20,000 chars


def md_text(text: str) -> str:
    """Text for a Markdown paragraph or table cell: cleaned, HTML and Markdown escaped, cut
    at ``MD_TEXT_CHARS`` characters."""
    text = clean(text)
    if len(text) > MD_TEXT_CHARS:
        text = text[:MD_TEXT_CHARS - 1] + "…"
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _MD_SPECIAL.sub(lambda m: "\\" + m.group(0), text)
    return _MD_LEADING.sub(lambda m: f"{m.group(1)}\\{m.group(2)}", text)


_TICKS = re.compile(r"`+")


def _longest_ticks(text: str) -> int:
    return max((len(m.group(0)) for m in _TICKS.finditer(text)), default=0)


def md_code(text: str) -> str:
    """An inline code span that no backtick inside can end (CommonMark 6.1)."""
    text = clean(text)
    fence = "`" * (_longest_ticks(text) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def md_fence(text: str, info: str = "") -> list[str]:
    """A fenced code block (lines) holding ``text`` verbatim but for control characters; its
    fence is longer than any backtick run inside, so the text cannot close it."""
    text = clean(text, keep_newlines=True)
    fence = "`" * max(3, _longest_ticks(text) + 1)
    return [f"{fence}{info}", *text.split("\n"), fence]


# --------------------------------------------------------------------------------------------
# Input that must not hold control characters

_CHAR_NAMES = {"\r": "a carriage return (\\r)", "\n": "a line feed (\\n)",
               "\x00": "a NUL byte (\\x00)", "\t": "a tab (\\t)", "\x1b": "an escape (\\x1b)",
               "\x7f": "a DEL (\\x7f)", "\ufeff": "a byte-order mark (U+FEFF)"}


def stray_character(text: str, *, allow_tab: bool = False) -> str | None:
    """The first control character in ``text``, named for a person (``a carriage return
    (\\r) at the end``), or ``None`` when there is none."""
    for index, char in enumerate(text):
        if (char == "\t" and allow_tab) or (char.isprintable() and char != "\ufeff"):
            continue
        name = _CHAR_NAMES.get(char) or f"a control character (U+{ord(char):04X})"
        if index == len(text) - 1:
            where = "at the end"
        elif index == 0:
            where = "at the start"
        else:
            where = f"at position {index + 1}"
        return f"{name} {where}"
    return None


def visible(text: str) -> str:
    """``text`` for an error message: control characters shown as escapes (``\\r``), not
    sent raw to the terminal."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def api_key_finding(env: Mapping[str, str],
                    variable: str = "OLLAMA_API_KEY") -> Finding | None:
    """A finding when the key variable the client sends (``OLLAMA_API_KEY``, or
    ``OPENAI_API_KEY`` for OpenAI clients) holds a stray character (a ``.env`` saved on Windows
    leaves a trailing ``\\r``). Not a usage error: the user's own client sends the same bytes,
    and fails the same way (httpx refuses the header; a proxy or Ollama rejects the key)."""
    from ollama_doctor import remedies as R

    key = env.get(variable, "")
    stray = stray_character(key) if key else None
    if stray is None:
        return None
    return Finding(
        "credential-malformed", Severity.ERROR,
        f"{variable} holds {stray}: every client that reads it sends a broken Authorization "
        "header (httpx refuses it outright: 'Illegal header value'; a server rejects the key).",
        {"variable": variable, "stray_character": stray, "length": len(key)},
        [R.step("Remove the stray character where the variable is set (a .env file saved "
                "with Windows line endings leaves a trailing \\r).",
                R.dos2unix(".env"), R.export_stripped(variable))])
