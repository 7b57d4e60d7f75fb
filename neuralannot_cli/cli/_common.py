"""Helpers shared by the CLI modules: one-line errors and the 'not yet built' exit."""

from __future__ import annotations

import sys
from typing import NoReturn

import typer
from rich.console import Console

err_console = Console(stderr=True, highlight=False)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print a one-line error (no traceback) to stderr and exit with ``code``."""
    err_console.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    raise typer.Exit(code)


def not_yet_built(command: str, issue: int, what: str) -> NoReturn:
    """Exit with code 2 saying which issue brings ``command`` (no fake success)."""
    err_console.print(
        f"[bold yellow]neuralannot {command}[/] is not built yet: {what} arrives with issue #{issue}.",
        soft_wrap=True,
    )
    sys.stderr.flush()
    raise typer.Exit(2)
