"""`python -m napari_training_assistant.cli`: the same as the `nta` command."""

import sys

from .main import main

sys.exit(main())
