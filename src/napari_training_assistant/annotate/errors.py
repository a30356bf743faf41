"""SAM3 errors a user can act on (shown as one red line in the tab, exit 2 in the CLI)."""

from ..project.errors import ProjectError


class Sam3Error(ProjectError):
    """A SAM3 model folder, device, prompt or backend cannot be used as asked; the message says how to fix it."""


def one_line(exc: BaseException) -> str:
    """An exception as a short clause for a one-line message: its type and the first sentence of its text."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0].split('. ')[0]}" if text else type(exc).__name__
