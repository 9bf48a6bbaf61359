"""ollama-doctor: find out why calls to an Ollama server fail."""

__version__ = "0.1.0"
