"""The real client libraries the real-client tier records with: ONE place for their versions.

Bump a pin, run ``python tests/clients/record.py --install --record`` and commit the changed
fixtures; ``--newest`` records with the newest releases instead, so a client that changes its
messages is seen when the pins are bumped rather than by surprise in CI.
"""

from __future__ import annotations

# pip packages (installed into an isolated venv, never the project's .venv).
PYTHON: dict[str, str] = {
    "ollama": "0.6.3",
    "openai": "3.63.0",
    "langchain-ollama": "1.1.0",
    "requests": "2.34.2",
    "httpx": "0.29.0",
}

# npm packages (installed into an isolated node_modules).
NODE: dict[str, str] = {
    "ollama": "0.6.4",
    "openai": "7.60.0",
}
