"""The installed package's version, read once (no imports from the package: any layer may use it)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("napari-training-assistant")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"
