"""The one place that removes secrets: API keys, ``Authorization`` values, proxy passwords.

Evidence is redacted when it is recorded (``redact_value``), and every rendered output passes
through ``Redactor.scrub`` once more with the exact secret strings this run knows about, so a
secret that slipped into a free-text message is still caught.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

MASK = "***"

_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH)", re.IGNORECASE)
_SECRET_HEADERS = {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key",
                   "api-key"}
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^/@\s:]*):(?P<pw>[^/@\s]*)@")
# A credential after "Bearer"/"Basic", but not a challenge's parameters (realm="ollama").
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+(?![a-z_]+=)[A-Za-z0-9._~+/=-]{4,}")
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
    except ValueError:
        return _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{parts.username}:{MASK}@{host}"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def redact_text(text: str) -> str:
    """Mask URL passwords and bearer/basic tokens inside free text."""
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    return _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", text)


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
