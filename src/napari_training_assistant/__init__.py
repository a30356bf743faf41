"""napari-training-assistant: a Training Project Folder for the SAM3-to-U-Net segmentation loop."""

from ._version import __version__
from .project import TrainingProject

__all__ = ["TrainingProject", "__version__", "build_model", "describe", "load_model", "predict_image"]


def __getattr__(name: str):
    # torch-backed API, imported on first use so that `import napari_training_assistant` stays light
    if name in ("build_model", "describe", "load_model"):
        from . import model

        return getattr(model, name)
    if name == "predict_image":
        from .predict import predict_image

        return predict_image
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
