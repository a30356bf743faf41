"""Load the backend a validated model folder needs (imports stay lazy: torch/transformers/sam3 only here)."""

from __future__ import annotations

from .backend import ImageBackend, PropagationBackend
from .model_folder import ModelFolder


def load_image_backend(folder: ModelFolder) -> ImageBackend:
    if folder.kind == "transformers":
        from .transformers_backend import TransformersImageBackend

        return TransformersImageBackend(folder.path, folder.device)
    if folder.kind == "sam3_package":
        from .sam3_package_backend import Sam3PackageImageBackend

        return Sam3PackageImageBackend(folder.path, folder.device)
    raise ValueError(f"{folder.kind} folders are for 3D propagation, not 2D previews")


def load_propagation_backend(folder: ModelFolder) -> PropagationBackend:
    if folder.kind == "tracker_video":
        from .transformers_video import TransformersVideoBackend

        return TransformersVideoBackend(folder.path, folder.device)
    if folder.kind == "multiplex":
        from .multiplex_backend import MultiplexPropagationBackend

        return MultiplexPropagationBackend(folder.path, folder.device)
    raise ValueError(f"{folder.kind} folders are for 2D previews, not 3D propagation")
