"""The ``medfusion`` command line (Typer + rich)."""
