"""ollama-doctor: find out why calls to an Ollama server fail."""

import sys as _sys
import types as _types

__version__ = "0.1.0"


def _without_httpx_command_line() -> None:
    """Keep httpx's own command line out of every run that loads httpx.

    ``httpx/__init__.py`` imports ``httpx._main`` (its ``httpx`` console script) whenever
    click, rich and pygments are installed, which they are here: ``rich.progress``,
    ``rich.syntax`` and ``pygments.lexers`` cost 20-35 ms a run, a tenth of a healthy check,
    for a script this program never calls. A placeholder ``httpx._main`` is registered before
    httpx is first imported; its ``main`` says what happened, as httpx's own fallback does. A
    process that imported httpx before this package keeps the real one."""
    if "httpx" in _sys.modules or "httpx._main" in _sys.modules:
        return
    placeholder = _types.ModuleType("httpx._main", "placeholder registered by ollama_doctor")

    def main() -> None:
        raise SystemExit("httpx's command line is not loaded in an ollama-doctor process")

    placeholder.main = main  # type: ignore[attr-defined]
    _sys.modules["httpx._main"] = placeholder


_without_httpx_command_line()
