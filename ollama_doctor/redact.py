"""The one place that removes secrets: API keys, ``Authorization`` values, proxy passwords.

Evidence is redacted when it is recorded (``redact_value``), and every rendered output passes
through ``Redactor.scrub`` once more with the exact secret strings this run knows about, so a
secret that slipped into a free-text message is still caught.

Free text (server answers, log lines, the error a user pastes) is masked by shape
(``redact_text``): URL passwords (``user:***@``), bearer/basic credentials, ``Authorization:``
lines, ``?api_key=`` query values, ``*_KEY=``/``*_TOKEN=``/``password:`` assignments and
well-known key formats (``sk-…``, ``ghp_…``, ``hf_…``, ``AKIA…``, ``AIza…``, ``xox?-…``, JWTs).
Every pattern is linear in its input: each starts only at a token boundary (a look-behind
for the class it repeats) and never nests quantifiers, so a 1 MB line costs a 1 MB scan.

``shorten_path_text`` shortens home and virtual-environment paths for reports meant for
sharing (``~/…``, ``<venv>/…``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

MASK = "***"
# The placeholders remedies print where the user must put a secret of their own
# (``remedies.SECRET_PLACEHOLDER``): words, not secrets, and masking them would make a pasted
# command carry a shell glob.
PLACEHOLDERS = frozenset({"YOUR_TOKEN", "USER:PASSWORD", "PASSWORD"})

_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH)", re.IGNORECASE)
_SECRET_HEADERS = {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key",
                   "api-key"}
# The look-behind makes a scheme start only where a token starts: without it every letter of a
# long word was a new start and the scan quadratic (1.8 s on 20,000 characters).
_USERINFO = re.compile(r"(?<![a-zA-Z0-9+.-])(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)"
                       r"(?P<user>[^/@\s:]*):(?P<pw>[^/@\s]*)@")
# A credential after "Bearer"/"Basic", but not a challenge's parameters (realm="ollama").
_BEARER = re.compile(r"(?i)\b(bearer|basic)[ \t]+(?![a-z_]+=)[A-Za-z0-9._~+/=-]{4,}")
# "Authorization: Bearer x", "'authorization': 'Basic x'", "Proxy-Authorization=x"
_AUTH_LINE = re.compile(
    r"(?i)(?<![a-z0-9-])((?:proxy-)?authorization)([\"']?[ \t]*[:=][ \t]*[\"']?)"
    r"(?:(bearer|basic|token|digest|negotiate)[ \t]+)?([^\s\"',;}\]]+)")
# ?api_key=…, &token=… in URLs
_QUERY = re.compile(
    r"(?i)([?&;](?:api[_-]?key|apikey|key|token|access[_-]?token|auth|password|passwd|secret"
    r"|sig|signature|client[_-]?secret)=)([^&#\s\"'<>]+)")
# NAME=value / NAME: value / "name": "value" where NAME names a secret (checked in code: a
# name is matched by one class, so the pattern stays linear).
_ASSIGN = re.compile(
    r"(?<![A-Za-z0-9_])([A-Za-z][A-Za-z0-9_]{0,63})([\"']?[ \t]*[=:][ \t]*)"
    r"(\"[^\"\n]{0,512}\"|'[^'\n]{0,512}'|[^\s\"',;}\]]+)")
_SECRET_ASSIGN_NAMES = {"api_key", "apikey", "password", "passwd", "secret", "token",
                        "access_token", "refresh_token", "auth_token", "client_secret",
                        "private_key", "secret_key"}
_SECRET_WORDS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL")
# Well-known key formats, whatever surrounds them.
_KEY_SHAPES = re.compile(
    r"(?<![A-Za-z0-9_-])(?:sk-[A-Za-z0-9_-]{16,}|gh[pousr]_[A-Za-z0-9]{20,}"
    r"|github_pat_[A-Za-z0-9_]{20,}|hf_[A-Za-z0-9]{20,}|AKIA[0-9A-Z]{16}"
    r"|AIza[0-9A-Za-z_-]{30,}|xox[abprs]-[A-Za-z0-9-]{10,}"
    r"|eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,})")
# Challenges name the scheme a server wants; they hold no secret and are evidence.
_CHALLENGE_HEADERS = {"www-authenticate", "proxy-authenticate"}


def is_secret_name(name: str) -> bool:
    """Names of variables or headers whose values must not be shown (brew doctor's rule)."""
    if name.lower() in _CHALLENGE_HEADERS:
        return False
    return name.lower() in _SECRET_HEADERS or bool(_SECRET_NAME.search(name))


def redact_url(url: str) -> str:
    """``http://user:pw@proxy:3128`` → ``http://user:***@proxy:3128``; other URLs unchanged."""
    try:
        parts = urlsplit(url)
        password, port = parts.password, parts.port
    except ValueError:  # a bad port or bracket: mask by shape
        return _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", url)
    if password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{parts.username}:{MASK}@{host}"
    if port is not None:
        netloc += f":{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


CACHED_CHARS = 256  # short strings repeat (keys, statuses, names): their masking is cached


def redact_text(text: str) -> str:
    """Mask secrets inside free text by their shape (see the module doc). Pure, so a short
    string's answer is cached: a fleet's reports repeat the same keys and values thousands of
    times."""
    if len(text) <= CACHED_CHARS:
        return _redact_short(text)
    return _redact_text(text)


@functools.lru_cache(maxsize=4096)
def _redact_short(text: str) -> str:
    return _redact_text(text)


def _redact_text(text: str) -> str:
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    text = _AUTH_LINE.sub(_auth_line, text)
    text = _QUERY.sub(lambda m: f"{m.group(1)}{MASK}", text)
    text = _ASSIGN.sub(_assignment, text)
    text = _BEARER.sub(lambda m: m.group(0) if m.group(0).split()[-1] in PLACEHOLDERS
                       else f"{m.group(1)} {MASK}", text)
    return _KEY_SHAPES.sub(MASK, text)


def _auth_line(m: re.Match[str]) -> str:
    scheme = f"{m.group(3)} " if m.group(3) else ""
    if not any(c.isalnum() for c in m.group(4)) or m.group(4) in PLACEHOLDERS:
        return m.group(0)  # "…", "***", YOUR_TOKEN: a placeholder, no secret
    return f"{m.group(1)}{m.group(2)}{scheme}{MASK}"


def _assignment(m: re.Match[str]) -> str:
    name, value = m.group(1), m.group(3)
    upper = name.upper()
    secret = (name.lower() in _SECRET_ASSIGN_NAMES
              or (name == upper and any(word in upper for word in _SECRET_WORDS)))
    bare = value.strip("\"'")
    if not secret or not bare or bare.startswith(MASK) or bare in PLACEHOLDERS:
        return m.group(0)
    quote = value[0] if value[0] in "\"'" else ""
    return f"{name}{m.group(2)}{quote}{MASK}{quote}"


_HOME = re.compile(r"(?<![\w./-])(?:/home/[^/\s\"'<>]+|/Users/[^/\s\"'<>]+|/root(?=[/\s\"']|$)"
                   r"|[A-Za-z]:\\Users\\[^\\\s\"'<>]+)")
_VENV = re.compile(r"[\\/](?:\.?venv|\.?env|virtualenv|\.tox[\\/][^\\/\s]+)[\\/]"
                   r"(?=(?:lib|Lib|bin|Scripts|include)[\\/])")
_PATH_STOP = re.compile(r"[\s\"'<>(),=]")


def shorten_path_text(text: str, home: str | None = None, prefix: str | None = None) -> str:
    """Home folders → ``~``, virtual environments → ``<venv>/``, for reports meant for sharing.

    ``home`` and ``prefix`` (this machine's home and ``sys.prefix``) default to the running
    process's; other users' ``/home/NAME`` and ``/Users/NAME`` are shortened too, as a pasted
    error may come from another machine."""
    import os
    import sys

    home = os.path.expanduser("~") if home is None else home
    if prefix is None and sys.prefix != getattr(sys, "base_prefix", sys.prefix):
        prefix = sys.prefix
    if prefix and len(prefix) > 1:
        text = text.replace(prefix.rstrip("/") + "/", "<venv>/")
    text = _shorten_venvs(text)
    if home and home not in ("/", "") and len(home) > 1:
        text = text.replace(home.rstrip("/") + "/", "~/")
    return _HOME.sub("~", text)


def _shorten_venvs(text: str) -> str:
    """``/any/where/.venv/lib/…`` → ``<venv>/lib/…``: the path's start is found by scanning
    back from each marker, never further than the previous one (linear)."""
    out: list[str] = []
    last = 0
    for m in _VENV.finditer(text):
        start = m.start()
        while start > last and not _PATH_STOP.match(text, start - 1):
            start -= 1
        out.append(text[last:start])
        out.append("<venv>/")
        last = m.end()
    out.append(text[last:])
    return "".join(out)


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: (MASK if is_secret_name(k) else redact_text(v)) for k, v in headers.items()}


def redact_env(env: Mapping[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in env.items():
        if is_secret_name(name) and "PROXY" not in name.upper():
            out[name] = MASK if value else ""
        else:
            out[name] = redact_url(redact_text(value))
    return out


def redact_value(value: Any) -> Any:
    """Recursively redact evidence: dict keys that name secrets, URLs, tokens in strings."""
    if isinstance(value, Mapping):
        return {
            k: (MASK if isinstance(k, str) and k.lower() in _SECRET_HEADERS else redact_value(v))
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [redact_value(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


class Redactor:
    """Scrubs the exact secret strings known to this run out of any rendered text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a token that contains another is masked whole; very short
        # strings are ignored because masking them would shred ordinary words.
        self._secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return redact_text(text)

    def scrub_redacted(self, text: str) -> str:
        """``scrub`` for text that already went through ``redact_text``: masking by shape is
        idempotent, so it runs again only when a known secret was replaced."""
        out = text
        for secret in self._secrets:
            out = out.replace(secret, MASK)
        return text if out == text else redact_text(out)
