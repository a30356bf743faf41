"""SAM3 errors a user can act on (shown as one red line in the tab, exit 2 in the CLI)."""

from ..project.errors import ProjectError


class Sam3Error(ProjectError):
    """A SAM3 model folder, device, prompt or backend cannot be used as asked; the message says how to fix it."""
