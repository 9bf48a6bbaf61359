"""Ollama's request structs, options and names, from one data file.

``data/api_fields.json`` copies, for Ollama v0.33.0, the request structs of ``api/types.go``
and ``openai/openai.go`` (json name -> Go type, as Go's error messages spell it), the message
structs, the options of ``api.Options`` and the server settings that are not options. The
request checker (``request_check``) and the emulator's decoder (``emulator.decode``) both read
it, so a field changes in one place. Pure: stdlib only, read once.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any


@lru_cache(maxsize=1)
def table() -> dict[str, Any]:
    """The field table (``data/api_fields.json``)."""
    text = resources.files("ollama_doctor").joinpath("data/api_fields.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def ollama_version() -> str:
    return str(table()["ollama_version"])


def struct_fields(endpoint: str) -> dict[str, str]:
    """json name -> Go type of the request struct ``endpoint`` decodes into."""
    fields: dict[str, str] = table()["endpoints"][endpoint]["fields"]
    return fields
