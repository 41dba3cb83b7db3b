"""What a model reference points at, checked before any weights are loaded.

A reference is ``"tiny"``, a hub id (``org/name``), a local diffusers folder or a single checkpoint file. This
module classifies it, finds its files in the local Hugging Face cache (or downloads only the small config files),
and refuses what cannot work with a message naming the path and what was expected: a missing path, a folder that
is not a pipeline, a missing component, the wrong family (SDXL, SD3, Flux, ...), the wrong UNet input channels, and
pickle checkpoints unless the caller allowed them. Everything here reads JSON and file headers only; torch is never
imported, so these checks fail fast. :mod:`t2vz_backend.models.loading` does the loading.

Family policy: SD 1.x (text cross-attention dim 768) and SD 2.x (1024, OpenCLIP) share the UNet block layout that
cross-frame attention patches (``attn1``/``attn2`` in every transformer block), so both are accepted; SD 2.x
768-pixel models predict ``v`` (see ``BaseModel.scheduler_config["prediction_type"]``). Models with extra
conditioning (SDXL's ``addition_embed_type``), 2048/1280-dim cross-attention or no UNet (SD3, Flux) are refused.
"""

from __future__ import annotations

import json
import os
import re
import struct
from dataclasses import dataclass, field
from typing import Any

from ..errors import ModelLoadError
from ..model_refs import PICKLE_SUFFIXES, SAFE_SUFFIX, is_hub_id, looks_like_path

CONFIG_PATTERNS = ["*.json", "*.txt"]  # what a single-file checkpoint needs from a diffusers repo: no weights
SD_COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
MODEL_CLASSES = {  # component -> accepted classes; anything else (custom code included) is refused
    "unet": ("UNet2DConditionModel",),
    "vae": ("AutoencoderKL",),
    "text_encoder": ("CLIPTextModel",),
    "tokenizer": ("CLIPTokenizer", "CLIPTokenizerFast"),
}
_FOREIGN = {"XL": "an SDXL", "StableDiffusion3": "an SD3", "Flux": "a Flux", "Kandinsky": "a Kandinsky",
            "PixArt": "a PixArt", "Cascade": "a Stable Cascade", "Wuerstchen": "a Wuerstchen", "Kolors": "a Kolors",
            "Sana": "a Sana"}
PICKLE_HINT = ("loading a pickle checkpoint can run arbitrary code hidden in the file; convert it to .safetensors, "
                "or set allow_pickle (CLI: --allow-pickle) if you trust its source")


@dataclass(frozen=True)
class Ref:
    """A classified model reference."""

    kind: str  # "tiny", "folder", "file" or "hub"
    value: str  # "tiny", an absolute path, or the hub id


@dataclass
class FolderInfo:
    """What :func:`check_pipeline_folder` found in a diffusers pipeline folder."""

    unet_config: dict[str, Any]
    uses_pickle: bool = False  # some component has only pickle weights (allowed by the caller)
    variants: dict[str, str | None] = field(default_factory=dict)  # component -> weights variant ("fp16") or None


def env_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) is set: treated like the offline switch."""
    return any(os.environ.get(name, "").strip().lower() in ("1", "on", "yes", "true")
               for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def classify(ref: str, *, what: str = "model", field_name: str = "model") -> Ref:
    """Tell a ``"tiny"``, an existing folder or file, and a hub id apart; anything else is a ModelLoadError."""
    if ref == "tiny":
        return Ref("tiny", "tiny")
    path = os.path.abspath(os.path.expanduser(ref)) if ref else ""
    if ref and os.path.isdir(path):
        return Ref("folder", path)
    if ref and os.path.isfile(path):
        return Ref("file", path)
    if ref and is_hub_id(ref):
        return Ref("hub", ref)
    written_as_path = not ref or looks_like_path(ref)
    raise ModelLoadError(
        f"{what} {ref!r} does not exist" if written_as_path else f"{what} {ref!r} is neither a path nor a hub id",
        field=field_name,
        hint="give 'tiny', a hub id like stable-diffusion-v1-5/stable-diffusion-v1-5, a diffusers folder "
             "or a .safetensors file",
    )


def pickle_error(path: str, what: str = "model", field_name: str = "model") -> ModelLoadError:
    return ModelLoadError(f"{what} {path!r} has only pickle weights (.ckpt/.bin/.pt/.pth), which are refused",
                          field=field_name, hint=PICKLE_HINT)


def check_file_type(path: str, allow_pickle: bool, what: str = "model", field_name: str = "model") -> bool:
    """True for an allowed pickle checkpoint, False for .safetensors; anything else is refused."""
    suffix = os.path.splitext(path)[1].lower()
    if suffix in PICKLE_SUFFIXES:
        if not allow_pickle:
            raise pickle_error(path, what, field_name)
        return True
    if suffix != SAFE_SUFFIX:
        raise ModelLoadError(f"{what} file {path!r} is not a checkpoint ({suffix or 'no extension'})",
                             field=field_name, hint="give a .safetensors file or a diffusers folder")
    return False


def read_json(path: str, what: str, field_name: str = "model") -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot read {what} {path!r}: {exc}", field=field_name,
                             hint="the model files are damaged or incomplete: download them again") from None
    if not isinstance(data, dict):
        raise ModelLoadError(f"{what} {path!r} is not a JSON object", field=field_name)
    return data


def weight_files(folder: str) -> tuple[list[str], list[str]]:
    """(safetensors files, pickle files) directly inside ``folder``."""
    names = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
    return ([n for n in names if n.endswith(SAFE_SUFFIX)],
            [n for n in names if n.endswith(PICKLE_SUFFIXES)])


def weights_variant(names: list[str]) -> str | None:
    """``None`` if plain weights exist (``model.safetensors``, shards), else the variant name (``"fp16"``)."""
    if not names or any(name.count(".") == 1 for name in names):
        return None
    return sorted(re.sub(r"-\d+-of-\d+$", "", name.split(".")[-2]) for name in names)[0]


def check_unet_config(config: dict[str, Any], *, kind: str, where: str, field_name: str = "model") -> None:
    """Refuse UNets that are not SD-1.x/2.x class or whose input channels do not fit ``kind`` ("sd"/"pix2pix")."""
    dim = config.get("cross_attention_dim")
    if config.get("addition_embed_type") or dim in (1280, 2048):
        raise _family_error(where, "an SDXL", field_name)
    if config.get("encoder_hid_dim_type") or not isinstance(dim, int):
        raise _family_error(where, "a non-SD", field_name)
    if "CrossAttnDownBlock2D" not in config.get("down_block_types", ()):
        raise _family_error(where, "a non-SD (no cross-attention blocks)", field_name)
    check_in_channels(int(config.get("in_channels", 4)), kind=kind, where=where, field_name=field_name)


def check_in_channels(channels: int, *, kind: str, where: str, field_name: str = "model") -> None:
    """Text-to-image UNets take 4 latent channels, Instruct-Pix2Pix UNets 8 (latents + image latents)."""
    if kind == "pix2pix" and channels != 8:
        raise ModelLoadError(
            f"{where} is not an Instruct-Pix2Pix model: its UNet takes {channels} input channels, not 8",
            field=field_name, hint="video editing needs an InstructPix2Pix model such as timbrooks/instruct-pix2pix")
    if kind == "sd" and channels != 4:
        what = {8: "an Instruct-Pix2Pix model (use it for video editing)", 9: "an inpainting model"}.get(
            channels, f"a model whose UNet takes {channels} input channels")
        raise ModelLoadError(f"{where} is {what}, not a text-to-image model with 4 latent channels",
                             field=field_name, hint="choose a text-to-image SD 1.5 model for this mode")


def check_pipeline_folder(folder: str, *, kind: str, allow_pickle: bool, require_weights: bool = True,
                          field_name: str = "model") -> FolderInfo:
    """Check a diffusers pipeline folder: model_index.json, family, every component present, pickle policy."""
    index_path = os.path.join(folder, "model_index.json")
    if not os.path.isfile(index_path):
        config_path = os.path.join(folder, "config.json")
        if os.path.isfile(config_path):
            component = read_json(config_path, "config", field_name).get("_class_name", "a single model")
            raise ModelLoadError(
                f"{folder!r} holds one component ({component}), not a whole pipeline", field=field_name,
                hint="give the pipeline folder that contains model_index.json, unet/, vae/, text_encoder/, ...")
        raise ModelLoadError(f"{folder!r} is not a diffusers pipeline folder (no model_index.json)", field=field_name,
                             hint="give a diffusers folder, a .safetensors checkpoint file or a hub id")
    index = read_json(index_path, "model_index.json", field_name)
    pipeline = str(index.get("_class_name", ""))
    for marker, family in _FOREIGN.items():
        if marker in pipeline:
            raise _family_error(f"{folder!r} ({pipeline})", family, field_name)
    if "unet" not in index and ("transformer" in index or os.path.isdir(os.path.join(folder, "transformer"))):
        raise _family_error(f"{folder!r} ({pipeline or 'transformer model'})", "a transformer-based", field_name)
    info = FolderInfo(unet_config={})
    for name in SD_COMPONENTS:
        entry = index.get(name)
        sub = os.path.join(folder, name)
        if not entry or not isinstance(entry, list) or entry[0] is None or not os.path.isdir(sub):
            raise ModelLoadError(f"{folder!r} has no {name}/ component", field=field_name,
                                 hint=f"the model is incomplete: a Stable Diffusion pipeline needs "
                                      f"{', '.join(SD_COMPONENTS)}; download it again")
        accepted = MODEL_CLASSES.get(name)
        if accepted and entry[-1] not in accepted:
            raise ModelLoadError(f"{folder!r}: component {name} is {entry[-1]}, expected {' or '.join(accepted)}",
                                 field=field_name, hint="t2vz loads Stable Diffusion 1.x/2.x pipelines only")
        if name == "scheduler":
            _require(os.path.join(sub, "scheduler_config.json"), folder, field_name)
        elif name == "tokenizer":
            if not any(os.path.isfile(os.path.join(sub, f)) for f in ("vocab.json", "tokenizer.json")):
                _require(os.path.join(sub, "vocab.json"), folder, field_name)
        else:
            _require(os.path.join(sub, "config.json"), folder, field_name)
            if require_weights:
                info.variants[name], pickled = _component_weights(sub, folder, allow_pickle, field_name)
                info.uses_pickle = info.uses_pickle or pickled
    info.unet_config = read_json(os.path.join(folder, "unet", "config.json"), "UNet config", field_name)
    check_unet_config(info.unet_config, kind=kind, where=repr(folder), field_name=field_name)
    return info


def read_safetensors_header(path: str, field_name: str = "model") -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape, from the file's JSON header only (no weights are read).

    Also proves the file whole: its size must be exactly what the header's offsets promise, so a truncated or
    padded download is refused here, naming the file, instead of failing inside the loader.
    """
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            (length,) = struct.unpack("<Q", handle.read(8))
            if length > min(200_000_000, size - 8):
                raise ValueError(f"its header claims {length} bytes, the file has {size}")
            header = json.loads(handle.read(length))
        header.pop("__metadata__", None)
        end = max((int(entry["data_offsets"][1]) for entry in header.values()), default=0)
        if 8 + length + end != size:
            raise ValueError(f"its header describes {8 + length + end} bytes, the file has {size}")
        return {name: tuple(entry["shape"]) for name, entry in header.items()}
    except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError, struct.error) as exc:
        raise damaged_error(path, exc, field_name) from None


def damaged_error(path: str, reason: object, field_name: str = "model") -> ModelLoadError:
    """The error for a weights file that exists but cannot be read: the truth, and never a pickle suggestion."""
    return ModelLoadError(f"weights file {path} is damaged: {reason}", field=field_name,
                          hint="the file is truncated or corrupt (an interrupted download or copy?): download it again")


def check_weights(folder: str, names: list[str], variant: str | None, field_name: str = "model") -> None:
    """Prove whole every .safetensors file of ``names`` (in ``folder``) that a load with ``variant`` reads."""
    for name in names:
        parts = name.split(".")
        if name.endswith(SAFE_SUFFIX) and (re.sub(r"-\d+-of-\d+$", "", parts[-2]) == variant if variant
                                           else len(parts) == 2):
            read_safetensors_header(os.path.join(folder, name), field_name)


def inspect_checkpoint(path: str, *, kind: str, field_name: str = "model") -> int:
    """Check an original-layout (LDM) SD checkpoint's header; return its cross-attention dim (768 SD 1.x)."""
    shapes = read_safetensors_header(path, field_name)
    keys = list(shapes)
    if any(k.startswith("conditioner.embedders") or k.startswith("model.diffusion_model.label_emb") for k in keys):
        raise _family_error(repr(path), "an SDXL", field_name)
    for marker, family in (("joint_blocks.", "an SD3"), ("double_blocks.", "a Flux")):
        if any(marker in k for k in keys):
            raise _family_error(repr(path), family, field_name)
    if any(k.startswith(("control_model.", "input_hint_block.", "controlnet_cond_embedding.")) for k in keys):
        raise ModelLoadError(f"{path!r} is a ControlNet, not a base model", field=field_name,
                             hint="give it as a ControlNet model; the base model is a full SD checkpoint")
    first_conv = shapes.get("model.diffusion_model.input_blocks.0.0.weight")
    if first_conv is None:
        raise ModelLoadError(
            f"{path!r} is not a full Stable Diffusion checkpoint (no model.diffusion_model.* UNet weights)",
            field=field_name, hint="give a full SD 1.5 .safetensors checkpoint, or a diffusers pipeline folder")
    for prefixes, part in ((("first_stage_model.", "vae."), "VAE (first_stage_model.*)"),
                           (("cond_stage_model.",), "text encoder (cond_stage_model.*)")):
        if not any(k.startswith(prefixes) for k in keys):
            raise ModelLoadError(f"{path!r} has no {part} weights", field=field_name,
                                 hint="use a full checkpoint that includes the VAE and text encoder")
    dims = [shapes[k][1] for k in keys if k.startswith("model.diffusion_model.") and k.endswith("attn2.to_k.weight")]
    if not dims:
        raise _family_error(repr(path), "a non-SD (no cross-attention)", field_name)
    check_in_channels(first_conv[1], kind=kind, where=repr(path), field_name=field_name)
    return dims[0]


def controlnet_conditioning(shapes: dict[str, tuple[int, ...]], path: str) -> tuple[tuple[int, ...], int]:
    """(conditioning_embedding_out_channels, conditioning_channels) of a single-file ControlNet, LDM or diffusers."""
    shapes = {k.removeprefix("control_model."): v for k, v in shapes.items()}
    if "input_hint_block.0.weight" in shapes:  # LDM: conv, SiLU, conv, SiLU, conv(stride 2), ... every 4th is a stage
        stages = [shapes[f"input_hint_block.{i}.weight"][0] for i in range(0, 13, 4)
                  if f"input_hint_block.{i}.weight" in shapes]
        return tuple(stages), shapes["input_hint_block.0.weight"][1]
    if "controlnet_cond_embedding.conv_in.weight" in shapes:
        conv_in = shapes["controlnet_cond_embedding.conv_in.weight"]
        stages, i = [conv_in[0]], 1
        while f"controlnet_cond_embedding.blocks.{i}.weight" in shapes:
            stages.append(shapes[f"controlnet_cond_embedding.blocks.{i}.weight"][0])
            i += 2
        return tuple(stages), conv_in[1]
    raise ModelLoadError(f"{path!r} is not a ControlNet checkpoint (no conditioning embedding weights)",
                         field="controls", hint="give a ControlNet .safetensors file, folder or hub id")


def _require(path: str, folder: str, field_name: str) -> None:
    if not os.path.isfile(path):
        raise ModelLoadError(f"{folder!r} is missing {os.path.relpath(path, folder)}", field=field_name,
                             hint="the model is incomplete: download it again")


def _component_weights(sub: str, folder: str, allow_pickle: bool, field_name: str) -> tuple[str | None, bool]:
    safe, pickled = weight_files(sub)
    if safe:
        variant = weights_variant(safe)
        check_weights(sub, safe, variant, field_name)
        return variant, False
    if pickled:
        if not allow_pickle:
            raise pickle_error(sub, "model component", field_name)
        return weights_variant(pickled), True
    raise ModelLoadError(f"{folder!r}: {os.path.basename(sub)}/ has no weights", field=field_name,
                         hint="the model is incomplete: download it again (offline: run once online first)")


def _family_error(where: str, family: str, field_name: str) -> ModelLoadError:
    return ModelLoadError(
        f"{where} is {family} model, which is not supported",
        field=field_name,
        hint="Text2Video-Zero here needs a Stable Diffusion 1.x/2.x model (UNet with 768/1024-dim cross-attention), "
             "e.g. stable-diffusion-v1-5/stable-diffusion-v1-5",
    )
