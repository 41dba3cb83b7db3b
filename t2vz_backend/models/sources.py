"""Where a hub model, a ControlNet or a LoRA keeps its files: the local Hugging Face cache and plain folders.

Hub look-ups go through ``huggingface_hub.snapshot_download``: offline with ``local_files_only=True`` (which answers
from the cache at once, so an id that was never downloaded fails fast instead of hanging), online with
``allow_patterns`` limited to what is needed before loading (configs, never every weight variant of a repository).
Hub errors become ModelLoadErrors that say what to do. No torch import.
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import ModelLoadError
from ..model_refs import DEFAULT_BASE_MODEL, DEFAULT_PIX2PIX_MODEL
from . import files as mf
from .tiny import ensure_tiny_models

# diffusers repositories whose configs (no weights) describe a single-file checkpoint's components
SINGLE_FILE_CONFIGS = {
    "sd1": DEFAULT_BASE_MODEL,
    "sd2": "stabilityai/stable-diffusion-2-1",
    "pix2pix": DEFAULT_PIX2PIX_MODEL,
}
_LORA_PREFERRED = "pytorch_lora_weights.safetensors"  # the name diffusers' save_lora_weights writes


def hub_snapshot(repo: str, *, offline: bool, what: str = "model", field_name: str = "model",
                 patterns: list[str] | None = None) -> str:
    """The local snapshot folder of hub repository ``repo`` (downloading ``patterns`` first when online)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        HfHubHTTPError,
        HFValidationError,
        IncompleteSnapshotError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
    )

    try:
        return snapshot_download(repo, allow_patterns=patterns, local_files_only=offline)
    except IncompleteSnapshotError as exc:
        # diffusers caches only the files it needs, so a usable snapshot is usually "incomplete": the folder
        # checks that follow decide whether what is there is enough.
        return exc.snapshot_path
    except LocalEntryNotFoundError as exc:
        if offline:
            raise ModelLoadError(
                f"{what} {repo!r} is not in the local Hugging Face cache, and offline mode is on", field=field_name,
                hint="turn offline mode off once to download it, or give a local folder or .safetensors file",
            ) from None
        raise ModelLoadError(f"could not reach the Hugging Face Hub to get {what} {repo!r}: {exc}", field=field_name,
                             hint="check the network connection, or turn offline mode on to use cached files") from None
    except RepositoryNotFoundError:
        raise ModelLoadError(f"{what} {repo!r} was not found on the Hugging Face Hub", field=field_name,
                             hint="check the id (org/name); a private or gated model needs `hf auth login`") from None
    except (HfHubHTTPError, HFValidationError, OSError) as exc:
        raise ModelLoadError(f"could not get {what} {repo!r} from the Hugging Face Hub: {exc}", field=field_name,
                             hint="check the id and the network connection, or use offline mode") from None


def controlnet_configs_folder(folder: str, allow_pickle: bool, *,
                              require_weights: bool = True) -> tuple[str | None, dict[str, Any], str | None, bool]:
    """(subfolder, config, weights variant, uses pickle) of a ControlNet folder.

    Accepts a ControlNet folder (``config.json`` with ``_class_name`` ControlNetModel + weights) or a pipeline
    folder that has a ``controlnet/`` component.
    """
    subfolder = None
    if os.path.isfile(os.path.join(folder, "config.json")):
        config_path = os.path.join(folder, "config.json")
    elif os.path.isfile(os.path.join(folder, "controlnet", "config.json")):
        subfolder, config_path = "controlnet", os.path.join(folder, "controlnet", "config.json")
    else:
        raise ModelLoadError(f"{folder!r} is not a ControlNet folder (no config.json)", field="controls",
                             hint="give a ControlNet folder, .safetensors file or hub id, e.g. "
                                  "lllyasviel/sd-controlnet-canny")
    config = mf.read_json(config_path, "ControlNet config", "controls")
    if config.get("_class_name") != "ControlNetModel":
        raise ModelLoadError(f"{folder!r} holds a {config.get('_class_name', 'model')}, not a ControlNetModel",
                             field="controls", hint="give a ControlNet (diffusers ControlNetModel)")
    if not require_weights:
        return subfolder, config, None, False
    safe, pickled = mf.weight_files(os.path.dirname(config_path))
    if safe:
        variant = mf.weights_variant(safe)
        mf.check_weights(os.path.dirname(config_path), safe, variant, "controls")
        return subfolder, config, variant, False
    if pickled and allow_pickle:
        return subfolder, config, mf.weights_variant(pickled), True
    if pickled:
        raise mf.pickle_error(folder, "ControlNet", "controls")
    raise ModelLoadError(f"ControlNet folder {folder!r} has no weights", field="controls",
                         hint="download it again (offline: run once online first)")


def lora_source(path: str, *, offline: bool, allow_pickle: bool, field_name: str) -> tuple[str, str | None, bool]:
    """(folder or hub id, weight file name or None, uses pickle) for ``load_lora_weights``."""
    found = mf.classify(path, what="LoRA", field_name=field_name)
    if found.kind == "tiny":
        raise ModelLoadError("'tiny' is a base model, not a LoRA", field=field_name,
                             hint="give a LoRA .safetensors file")
    if found.kind == "hub" and not offline:
        return found.value, None, False  # diffusers picks the repository's .safetensors (use_safetensors=True)
    if found.kind == "file":
        suffix = os.path.splitext(found.value)[1].lower()
        if suffix in mf.PICKLE_SUFFIXES and not allow_pickle:
            raise mf.pickle_error(found.value, "LoRA", field_name)
        if suffix not in mf.PICKLE_SUFFIXES and suffix != mf.SAFE_SUFFIX:
            raise ModelLoadError(f"LoRA file {found.value!r} is not a .safetensors file", field=field_name,
                                 hint="give the LoRA's .safetensors file")
        if suffix == mf.SAFE_SUFFIX:
            mf.read_safetensors_header(found.value, field_name)  # a damaged file is named here, not in the loader
        return os.path.dirname(found.value), os.path.basename(found.value), suffix in mf.PICKLE_SUFFIXES
    folder = found.value if found.kind == "folder" else hub_snapshot(found.value, offline=True, what="LoRA",
                                                                     field_name=field_name)
    safe, pickled = mf.weight_files(folder)
    for candidates, is_pickle in ((safe, False), (pickled, True)):
        if not candidates:
            continue
        if is_pickle and not allow_pickle:
            raise mf.pickle_error(folder, "LoRA", field_name)
        if len(candidates) > 1 and _LORA_PREFERRED not in candidates:
            raise ModelLoadError(f"LoRA folder {folder!r} holds several weight files ({', '.join(candidates)})",
                                 field=field_name, hint="give the path of the LoRA file itself")
        name = _LORA_PREFERRED if _LORA_PREFERRED in candidates else candidates[0]
        if not is_pickle:
            mf.read_safetensors_header(os.path.join(folder, name), field_name)
        return folder, name, is_pickle
    raise ModelLoadError(f"LoRA folder {folder!r} has no weights file", field=field_name,
                         hint="give the LoRA's .safetensors file")


def single_file_configs(path: str, config: str | None, *, kind: str, cross_attention_dim: int | None,
                        offline: bool) -> str:
    """A local folder with the diffusers configs + tokenizer that describe single-file checkpoint ``path``.

    ``config`` (a folder, hub id or "tiny") wins; otherwise the family's reference repository is looked up in the
    cache (offline) or its configs are downloaded (online). Offline with nothing cached fails fast.
    """
    if config:
        found = mf.classify(config, what="config", field_name="model_config")
        if found.kind == "file":
            raise ModelLoadError(f"config {config!r} is a file", field="model_config",
                                 hint="give a diffusers folder (model_index.json, unet/, vae/, ...) or a hub id")
        if found.kind == "tiny":
            folder = ensure_tiny_models().pix2pix if kind == "pix2pix" else ensure_tiny_models().sd
        elif found.kind == "folder":
            folder = found.value
        else:
            folder = hub_snapshot(found.value, offline=offline, what="config", field_name="model_config",
                                  patterns=mf.CONFIG_PATTERNS)
    else:
        family = "pix2pix" if kind == "pix2pix" else "sd2" if cross_attention_dim == 1024 else "sd1"
        repo = SINGLE_FILE_CONFIGS[family]
        try:
            folder = hub_snapshot(repo, offline=offline, what="config", field_name="model_config",
                                  patterns=mf.CONFIG_PATTERNS)
        except ModelLoadError as exc:
            if not offline:
                raise
            name = {"pix2pix": "Instruct-Pix2Pix", "sd2": "SD 2.x", "sd1": "SD 1.5"}[family]
            raise ModelLoadError(
                f"offline, and the diffusers configs for single-file checkpoint {path!r} ({repo}) are not cached",
                field="model_config", hint=f"set model_config (CLI: --model-config) to a local diffusers {name} folder "
                "(model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/), or run once online so that "
                "the configs are cached",
            ) from exc
    info = mf.check_pipeline_folder(folder, kind=kind, allow_pickle=True, require_weights=False,
                                    field_name="model_config")
    found_dim = info.unet_config.get("cross_attention_dim")
    if cross_attention_dim is not None and found_dim != cross_attention_dim:
        raise ModelLoadError(f"config {folder!r} describes a UNet with cross-attention dim {found_dim}, but "
                             f"{path!r} has {cross_attention_dim}", field="model_config",
                             hint="use the configs of the checkpoint's own family (SD 1.x: 768, SD 2.x: 1024)")
    return folder


def controlnet_config_from_unet(unet_config: dict[str, Any], accepted: set[str], channels: tuple[int, ...],
                                conditioning_channels: int) -> dict[str, Any]:
    """A ControlNetModel config for a single-file ControlNet: an original ControlNet copies its UNet's encoder.

    ``accepted`` are ControlNetModel's init argument names; ``channels``/``conditioning_channels`` come from the
    file (:func:`t2vz_backend.models.files.controlnet_conditioning`).
    """
    config = {k: v for k, v in unet_config.items() if k in accepted and not k.startswith("_")}
    config.update({"_class_name": "ControlNetModel", "in_channels": 4, "conditioning_channels": conditioning_channels,
                   "conditioning_embedding_out_channels": list(channels)})
    return config


def check_controlnet_fits(config: dict[str, Any], unet_config: dict[str, Any], base_ref: str, where: str) -> None:
    """A ControlNet adds residuals to the UNet's blocks: family (text dim) and block channels must agree."""
    for key in ("cross_attention_dim", "block_out_channels", "layers_per_block"):
        mine, theirs = config.get(key), unet_config.get(key)
        if _plain(mine) != _plain(theirs):
            raise ModelLoadError(
                f"{where} does not match the base model {base_ref!r}: its {key} is {mine}, the base model's is "
                f"{theirs}", field="controls",
                hint="use a ControlNet made for the base model's family (for SD 1.5: lllyasviel/sd-controlnet-*)")


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, (list, tuple)) else value
