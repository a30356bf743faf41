"""The trainable U-Net (torch): build it from a descriptor, describe it, check and load weights."""

from .checkpoint_info import CheckpointInfo, read_checkpoint_info
from .checkpoint_io import load_model, read_checkpoint, save_checkpoint
from .state import expected_state_shapes, load_state_into
from .summary import describe
from .unet import UNet, build_model

__all__ = [
    "CheckpointInfo",
    "UNet",
    "build_model",
    "describe",
    "expected_state_shapes",
    "load_model",
    "load_state_into",
    "read_checkpoint",
    "read_checkpoint_info",
    "save_checkpoint",
]
