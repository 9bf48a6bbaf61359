"""Run the command line as ``python -m ollama_doctor``."""

from ollama_doctor.cli import main

main()
