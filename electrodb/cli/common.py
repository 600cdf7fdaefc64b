"""What every ``electrodb`` sub-command shares: the console (reads well in files) and the one-line error exit."""

from __future__ import annotations

import typer
from rich.text import Text

from electrodb.cli import reporting

__all__ = ["console", "fail"]

console = reporting.make_console()


def fail(message: str) -> None:
    """Print ``error: message`` unwrapped and verbatim (no rich markup, no line breaks), exit with code 2."""
    console.print(Text.assemble(("error: ", "bold red"), message), soft_wrap=True)
    raise typer.Exit(code=2)
