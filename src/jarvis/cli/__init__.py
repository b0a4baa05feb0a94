"""The ``jarvis`` command line (Typer + Rich)."""
