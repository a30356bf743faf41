"""The U-Net as one self-contained Python file (torch only), for model packages that carry their architecture
as source (bioimage.io `pytorch_state_dict`): written from this package's own modules, never a second copy.

The file defines `nta_unet(**architecture)`, which builds the `UNet` the architecture descriptor names, and
`nta_unet_with_marker` for point models with a centre-marker channel (two inputs); the state dict of a
checkpoint loads into either unchanged.
"""

from __future__ import annotations

import ast
import inspect
from types import ModuleType

from . import layers, padding, unet

CALLABLE = "nta_unet"
MARKED_CALLABLE = "nta_unet_with_marker"
_SKIPPED = {"validate_architecture", "build_model", "build_unallocated"}  # pydantic and project code

_HEADER = '''"""U-Net of napari-training-assistant {version} (generated from its model/padding.py, model/layers.py and
model/unet.py). Build it with `{callable}(**architecture)`; it returns logits."""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn
'''

_FOOTER = '''

class ArchitectureConfig:
    """The descriptor's fields by attribute (the package's schema, without its validation)."""

    def __init__(self, **fields: Any):
        self.__dict__.update({{"anisotropic_levels": [], **fields}})

    def model_dump(self) -> dict[str, Any]:
        return dict(self.__dict__)


def {callable}(**architecture: Any) -> UNet:
    """The U-Net an architecture descriptor (as saved in the checkpoint) describes."""
    return UNet(ArchitectureConfig(**architecture))


class UNetWithMarker(UNet):
    """A point model trained with a centre marker: the image and the marker as two inputs (same weights)."""

    def forward(self, image: torch.Tensor, marker: torch.Tensor) -> torch.Tensor:
        return super().forward(torch.cat([image, marker], dim=1))


def {marked}(**architecture: Any) -> UNetWithMarker:
    """`UNetWithMarker` of an architecture descriptor whose last input channel is the centre marker."""
    return UNetWithMarker(ArchitectureConfig(**architecture))
'''


def architecture_source() -> str:
    """The text of the self-contained file."""
    from .._version import __version__

    parts = [_HEADER.format(version=__version__, callable=CALLABLE)]
    for module in (padding, layers, unet):
        parts.extend(_definitions(module))
    parts.append(_FOOTER.format(callable=CALLABLE, marked=MARKED_CALLABLE))
    return "\n\n".join(part.strip("\n") for part in parts) + "\n"


def _definitions(module: ModuleType) -> list[str]:
    """The module's top-level statements without its docstring, imports and the project-bound functions."""
    source = inspect.getsource(module)
    tree = ast.parse(source)
    kept = []
    for index, node in enumerate(tree.body):
        if isinstance(node, ast.Import | ast.ImportFrom):
            continue
        if index == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue
        if isinstance(node, ast.FunctionDef) and node.name in _SKIPPED:
            continue
        kept.append(ast.get_source_segment(source, node, padded=True) or "")
    return kept
