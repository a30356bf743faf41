"""A tiny random-weight SAM3 folder (`Sam3VideoModel`: detector + tracker), laid out like `facebook/sam3`.

`write_tiny_sam3_folder(path)` writes `config.json` (model_type "sam3_video") + `model.safetensors` (24 MB)
and a tiny CLIP tokenizer in well under a second once torch and transformers are imported. Other test folders load this file by path
(tests run with `--import-mode=importlib`), as tests/conftest.py does for its `tiny_sam3_folder` fixture:

    spec = importlib.util.spec_from_file_location("tiny_sam3", Path(__file__).parents[1] / "annotate" / "tiny_sam3.py")
"""

from __future__ import annotations

from pathlib import Path

IMAGE_SIZE = 224  # 16 x 16 patches of 14 pixels
WIDTH = 128  # FPN, detector and tracker width
MEMORY = 64  # the tracker's memory channels: its memory cross-attention takes 64, fixed, and transformers' object
# pointers only come out right when the memory is narrower than the tracker (as in SAM3: 64 and 256)
CLIP_VOCAB = 49408  # the real CLIP BPE vocabulary size: the backend feeds real token ids for "visual"


def _vision_config() -> dict:
    grid = IMAGE_SIZE // 14
    return {
        "backbone_config": {
            "model_type": "sam3_vit_model", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "image_size": IMAGE_SIZE, "patch_size": 14, "window_size": 8, "global_attn_indexes": [0, 1],
            "pretrain_image_size": IMAGE_SIZE,
        },
        "fpn_hidden_size": WIDTH,
        "scale_factors": [4.0, 2.0, 1.0, 0.5],
        "backbone_feature_sizes": [[4 * grid, 4 * grid], [2 * grid, 2 * grid], [grid, grid]],
    }


def tiny_sam3_config():
    """A `Sam3VideoConfig` with the real layout (4 FPN levels, CLIP vocabulary) but tiny widths and depths."""
    from transformers import Sam3VideoConfig

    small = {"hidden_size": WIDTH, "num_attention_heads": 4, "intermediate_size": 64}
    detector = {
        "vision_config": _vision_config(),
        "text_config": {"vocab_size": CLIP_VOCAB, "hidden_size": 32, "intermediate_size": 64, "projection_dim": 32,
                        "num_hidden_layers": 1, "num_attention_heads": 4, "max_position_embeddings": 32},
        "geometry_encoder_config": small | {"num_layers": 1, "roi_size": 7},
        "detr_encoder_config": small | {"num_layers": 1},
        "detr_decoder_config": small | {"num_layers": 1, "num_queries": 5},
        "mask_decoder_config": {"hidden_size": WIDTH, "num_attention_heads": 4, "num_upsampling_stages": 3},
    }
    tracker = {
        "vision_config": _vision_config(),
        "prompt_encoder_config": {"hidden_size": WIDTH, "image_size": IMAGE_SIZE, "patch_size": 14, "mask_input_channels": 8},
        "mask_decoder_config": {"hidden_size": WIDTH, "mlp_dim": 64, "num_attention_heads": 4, "iou_head_hidden_dim": 32},
        "image_size": IMAGE_SIZE,
        "num_maskmem": 3,
        "max_object_pointers_in_encoder": 4,
        "memory_attention_hidden_size": WIDTH, "memory_attention_num_layers": 1, "memory_attention_feed_forward_hidden_size": 64,
        "memory_encoder_hidden_size": WIDTH, "memory_encoder_output_channels": MEMORY,
        "mask_downsampler_embed_dim": WIDTH, "memory_fuser_embed_dim": WIDTH, "memory_fuser_intermediate_dim": 64,
        "memory_fuser_num_layers": 1,
    }
    return Sam3VideoConfig(detector_config=detector, tracker_config=tracker)


def write_tiny_tokenizer(path: str | Path) -> None:
    """A CLIP tokenizer (`tokenizer.json` + `tokenizer_config.json`, as facebook/sam3 has) whose vocabulary is
    the 26 letters, with CLIP's start and end ids: enough to turn any lower-case text into real ids."""
    import json
    import string
    import tempfile

    from transformers import CLIPTokenizer

    vocab = {c: i for i, c in enumerate(string.ascii_lowercase)} | {c + "</w>": 26 + i for i, c in enumerate(string.ascii_lowercase)}
    vocab |= {"<|startoftext|>": CLIP_VOCAB - 2, "<|endoftext|>": CLIP_VOCAB - 1}
    with tempfile.TemporaryDirectory() as scratch:
        (Path(scratch) / "vocab.json").write_text(json.dumps(vocab))
        (Path(scratch) / "merges.txt").write_text("#version: 0.2\n")
        CLIPTokenizer(str(Path(scratch) / "vocab.json"), str(Path(scratch) / "merges.txt")).save_pretrained(path)


def write_tiny_sam3_folder(path: str | Path, seed: int = 0, tokenizer: bool = True) -> Path:
    """Save a tiny random `Sam3VideoModel` (fixed seed) into `path`: config.json + model.safetensors, and
    (unless `tokenizer=False`) a tiny CLIP tokenizer for text prompts.

    The weights are stored under the model's own names (`detector_model.*`, `tracker_model.*`, `tracker_neck.*`)
    as in facebook/sam3; `save_pretrained` of transformers 5.x would write `tracker_model.tracker_model.*`.
    Weights that transformers initialises to zero (e.g. the tracker's no-memory embedding) get small random
    values, as trained weights have, so that tests see where each one is added."""
    import torch
    from safetensors.torch import save_file
    from transformers import Sam3VideoModel

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = Sam3VideoModel(tiny_sam3_config())
    with torch.no_grad():
        for parameter in model.parameters():
            if not parameter.any():
                parameter.normal_(std=0.02)
    model.config.save_pretrained(path)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path / "model.safetensors", metadata={"format": "pt"})
    if tokenizer:
        write_tiny_tokenizer(path)
    return path
