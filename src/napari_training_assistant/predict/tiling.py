"""Sliding-window prediction of whole 2D images and 3D volumes, in bounded memory.

The image is cut into overlapping tiles (the last tile of each axis ends at the end of the
axis, so the image is never padded), tiles are read lazily from the array (a zarr array or a
memmap works), run through the model in batches, weighted by a Gaussian that favours tile
centres and accumulated into one float32 logit array plus one spatial weight array. The
blended logits sum(w * logits) / sum(w) are then turned into probabilities in place: sigmoid
(binary, multilabel) or softmax over the channels (multiclass).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ..project.run_options import PredictOptions
from .inference_model import InferenceModel, model_device, prepare_inference_model

DEFAULT_TILE = {2: 256, 3: 96}
MIN_WEIGHT = 1e-3  # Gaussian weights are clipped to this fraction of the centre weight
SOFTMAX_CHUNK = 1 << 22  # elements per chunk of the final in-place softmax

TileSlices = tuple[slice, ...]
Progress = Callable[[int, int], Any]


def _per_axis(value: int | Sequence[int], dims: int, name: str) -> tuple[int, ...]:
    values = (int(value),) * dims if isinstance(value, (int, np.integer)) else tuple(int(v) for v in value)
    if len(values) != dims:
        raise ValueError(f"{name} needs {dims} values (one per spatial axis), got {len(values)}")
    if any(v < 1 for v in values):
        raise ValueError(f"{name} must be positive, got {values}")
    return values


def tile_stride(tile: int, overlap: float) -> int:
    """Voxels between the starts of neighbouring tiles: tile * (1 - overlap), at least 1."""
    return max(1, int(tile * (1.0 - overlap)))


def tile_starts(size: int, tile: int, overlap: float = 0.5, *, stride: int | None = None) -> list[int]:
    """Start offsets of the tiles along one axis: every `stride` (default from `overlap`), the last ending at `size`."""
    if tile >= size:
        return [0]
    step = tile_stride(tile, overlap) if stride is None else max(1, int(stride))
    return [*range(0, size - tile, step), size - tile]


def iter_tiles(
    spatial_shape: Sequence[int],
    tile: int | Sequence[int],
    overlap: float = 0.5,
    *,
    strides: Sequence[int] | None = None,
) -> Iterator[TileSlices]:
    """Slice tuples of the tiles covering `spatial_shape`, in C order.

    A tile is clipped to the axis where the axis is shorter; all tiles then have the same shape.
    `overlap` is the fraction of a tile shared with its neighbour, 0 <= overlap < 1; `strides`
    (one per axis) replaces it with explicit steps between tile starts.
    """
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    shape = tuple(int(s) for s in spatial_shape)
    if any(s < 1 for s in shape):
        raise ValueError(f"cannot tile an empty shape {shape}")
    tiles = tuple(min(t, s) for t, s in zip(_per_axis(tile, len(shape), "tile"), shape, strict=True))
    steps = [None] * len(shape) if strides is None else list(strides)
    starts = [tile_starts(s, t, overlap, stride=st) for s, t, st in zip(shape, tiles, steps, strict=True)]
    for corner in itertools.product(*starts):
        yield tuple(slice(c, c + t) for c, t in zip(corner, tiles, strict=True))


def gaussian_weights(tile: Sequence[int], min_weight: float = MIN_WEIGHT) -> np.ndarray:
    """Importance map of one tile: a centred Gaussian (sigma = tile/8 per axis), peak 1, clipped below."""
    weights = np.ones((), dtype=np.float64)
    for size in tile:
        offset = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
        profile = np.exp(-0.5 * (offset / (size / 8.0)) ** 2)
        weights = np.multiply.outer(weights, profile / profile.max())
    return np.maximum(weights, min_weight).astype(np.float32)


def _architecture(model: nn.Module) -> Mapping[str, Any]:
    arch = getattr(model, "architecture", None)
    return arch if isinstance(arch, Mapping) else {}


def _first_conv(model: nn.Module) -> nn.Module | None:
    return next((m for m in model.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d))), None)


def _model_layout(model: nn.Module, image_ndim: int) -> tuple[int, int]:
    """(spatial dims, input channels) from model.architecture, else from the first convolution."""
    arch = _architecture(model)
    conv = _first_conv(model)
    channels = arch.get("input_channels")
    if channels is None:
        channels = conv.in_channels if conv is not None else 1
    spatial = arch.get("spatial_dims")
    if spatial in ("2d", "3d"):
        dims = int(spatial[0])
    elif conv is not None:
        dims = conv.weight.ndim - 2
    else:
        dims = image_ndim if channels == 1 else image_ndim - 1
    return dims, int(channels)


def uses_softmax(architecture: Mapping[str, Any]) -> bool:
    """Softmax over channels for multiclass models; sigmoid otherwise (also without a descriptor)."""
    return architecture.get("output_mode") == "multiclass" or architecture.get("activation") == "softmax"


def default_batch_size(tile: Sequence[int]) -> int:
    """4 tiles of a 2D image; 2 tiles of up to 96^3 voxels in 3D, else 1."""
    if len(tile) == 2:
        return 4
    return 2 if math.prod(tile) <= 96**3 else 1


def _check_image(image: Any, dims: int, channels: int) -> tuple[tuple[int, ...], bool]:
    """(spatial shape, whether the image has a channel axis)."""
    shape = tuple(int(s) for s in image.shape)
    if len(shape) == dims and channels == 1:
        return shape, False
    if len(shape) == dims + 1 and shape[0] == channels:
        return shape[1:], True
    axes = "zyx"[-dims:]
    wanted = (
        f"({', '.join(axes)}) or (1, {', '.join(axes)})"
        if channels == 1
        else f"({channels}, {', '.join(axes)})"
    )
    raise ValueError(f"the model expects an image shaped {wanted}; got shape {shape}")


def predict_image(
    model: nn.Module,
    image: Any,
    *,
    tile_size: int | Sequence[int] | None = None,
    overlap: float = 0.5,
    batch_size: int | None = None,
    device: str | torch.device | None = None,
    progress: Progress | None = None,
) -> np.ndarray:
    """Probabilities (C, *spatial) float32 of a whole image, predicted tile by tile.

    `image` is (*spatial) for a single-channel model or (C_in, *spatial), any numeric dtype,
    already normalised; any array-like with `.shape` and numpy-style slicing works and is only
    read one tile at a time. `tile_size` defaults to 256 per axis in 2D, 96 in 3D (clipped to
    the image). `device` defaults to the model's. `progress(done_tiles, total_tiles)` is called
    after each batch. The caller's model is not modified (see `inference_model`).
    """
    options = PredictOptions(tile_size=tile_size, overlap=overlap, batch_size=batch_size)  # InputError (a ValueError)
    dims, channels = _model_layout(model, len(image.shape))
    spatial, has_channel_axis = _check_image(image, dims, channels)
    tile = tuple(options.tile_for(f"{dims}d") or (DEFAULT_TILE[dims],) * dims)
    tile = tuple(min(t, s) for t, s in zip(tile, spatial, strict=True))
    tiles = list(iter_tiles(spatial, tile, options.overlap))
    batch = min(options.batch_size or default_batch_size(tile), len(tiles))
    target = model_device(model) if device is None else torch.device(device)
    net = prepare_inference_model(model, target)
    try:
        with torch.inference_mode():
            logits = _accumulate(net, image, tiles, tile, batch, channels, has_channel_axis, target, progress)
            _activate(logits, softmax=uses_softmax(_architecture(model)))
    finally:
        net.restore()
    return logits.numpy()


def blend_tiles(
    net: InferenceModel,
    image: np.ndarray,
    tiles: Sequence[TileSlices],
    tile: tuple[int, ...],
    *,
    batch: int,
    softmax: bool,
    region: TileSlices,
    device: torch.device,
) -> np.ndarray:
    """Probabilities (C, *region shape) float32 blended from `tiles` of `image` (C_in, *spatial).

    Only `region` of the image is accumulated: a tile adds its part inside it, in the order of
    `tiles`, so a region predicted from the tiles of a whole-image grid that touch it equals that
    part of the whole-image prediction (block-wise prediction of volumes of any size).
    """
    with torch.inference_mode():
        logits = _accumulate(net, image, list(tiles), tile, batch, int(image.shape[0]), True, device, None, region)
        _activate(logits, softmax=softmax)
    return logits.numpy()


def _accumulate(
    net: InferenceModel,
    image: Any,
    tiles: list[TileSlices],
    tile: tuple[int, ...],
    batch: int,
    channels: int,
    has_channel_axis: bool,
    device: torch.device,
    progress: Progress | None,
    region: TileSlices | None = None,
) -> torch.Tensor:
    """sum(w * logits) / sum(w) over all tiles inside `region` (default: the whole image), as a cpu
    tensor sharing memory with numpy."""
    spatial = tuple(int(s) for s in (image.shape[1:] if has_channel_axis else image.shape))
    if region is not None:
        spatial = tuple(r.stop - r.start for r in region)
    on_cpu = device.type == "cpu"
    # one reusable input buffer; pinned so host-to-GPU copies can overlap
    buffer = torch.empty((batch, channels, *tile), dtype=torch.float32, pin_memory=device.type == "cuda")
    buffer_np = buffer.numpy()
    weight_cpu = torch.from_numpy(gaussian_weights(tile))
    weight_dev = weight_cpu.to(device)
    weight_sum = torch.from_numpy(np.zeros(spatial, dtype=np.float32))
    dtype = _input_dtype(net.module)
    output: torch.Tensor | None = None
    done = 0
    for start in range(0, len(tiles), batch):
        group = tiles[start : start + batch]
        for i, slices in enumerate(group):
            if has_channel_axis:
                buffer_np[i] = image[(slice(None), *slices)]
            else:
                buffer_np[i, 0] = image[slices]
        pred = net(buffer[: len(group)].to(device, dtype=dtype, non_blocking=True))
        if tuple(pred.shape[2:]) != tile or pred.shape[0] != len(group):
            raise ValueError(
                f"the model turned a batch of tiles {(len(group), channels, *tile)} into {tuple(pred.shape)}; "
                "tiled prediction needs an output of the input's spatial size"
            )
        if output is None:
            output = torch.from_numpy(np.zeros((pred.shape[1], *spatial), dtype=np.float32))
        weighted = None if on_cpu else (pred.float() * weight_dev).cpu()
        for i, slices in enumerate(group):
            target, part = _clip(slices, region)
            if target is None:
                continue
            if on_cpu:
                output[(slice(None), *target)].addcmul_(pred[i].float()[(slice(None), *part)], weight_cpu[part])
            else:
                output[(slice(None), *target)].add_(weighted[i][(slice(None), *part)])
            weight_sum[target].add_(weight_cpu[part])
        done += len(group)
        if progress is not None:
            progress(done, len(tiles))
    assert output is not None
    return output.div_(weight_sum)


def _clip(slices: TileSlices, region: TileSlices | None) -> tuple[TileSlices | None, TileSlices]:
    """(where a tile lands in the region's output, which part of the tile), or (None, ()) outside it."""
    if region is None:
        return slices, tuple(slice(None) for _ in slices)
    target, part = [], []
    for s, r in zip(slices, region, strict=True):
        lo, hi = max(s.start, r.start), min(s.stop, r.stop)
        if hi <= lo:
            return None, ()
        target.append(slice(lo - r.start, hi - r.start))
        part.append(slice(lo - s.start, hi - s.start))
    return tuple(target), tuple(part)


def _input_dtype(model: nn.Module) -> torch.dtype:
    """The floating dtype of the model's first floating parameter (float32 without one)."""
    return next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)


def _activate(logits: torch.Tensor, *, softmax: bool) -> None:
    """Logits (C, *spatial) to probabilities, in place; softmax chunk by chunk to bound memory."""
    if not softmax:
        logits.sigmoid_()
        return
    rows = logits.shape[1]
    step = max(1, SOFTMAX_CHUNK // max(1, logits[:, :1].numel()))
    for start in range(0, rows, step):
        part = logits[:, start : start + step]
        part.copy_(torch.softmax(part, dim=0))


def probabilities_to_labels(prob: np.ndarray, architecture: Mapping[str, Any] | None = None, instance: Any = None) -> np.ndarray:
    """Labels from `predict_image` probabilities (C, *spatial).

    binary: prob[0] > threshold, uint8 (*spatial); multiclass: argmax over channels, uint8
    (uint16 beyond 256 classes) (*spatial); multilabel: prob > threshold per channel, uint8
    (C, *spatial); instance: uint32 object ids (*spatial) by `instances.instance_labels` with the
    `instance` settings (`InstanceSettings`, defaults when None). Without a descriptor: multiclass
    when C > 1, binary otherwise.
    """
    arch = dict(architecture or {})
    prob = np.asarray(prob)
    threshold = float(arch.get("threshold", 0.5))
    mode = arch.get("output_mode") or ("multiclass" if prob.shape[0] > 1 else "binary")
    if mode == "binary":
        return (prob[0] > threshold).astype(np.uint8)
    if mode == "multiclass":
        dtype = np.uint8 if prob.shape[0] <= 256 else np.uint16
        return np.argmax(prob, axis=0).astype(dtype)
    if mode == "multilabel":
        return (prob > threshold).astype(np.uint8)
    if mode == "instance":
        from .instances import instance_labels

        return instance_labels(prob, instance)
    raise ValueError(f"unknown output_mode {mode!r}; expected binary, multiclass, multilabel or instance")
