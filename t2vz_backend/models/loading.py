"""Load models: the only module in the project that calls ``from_pretrained`` / ``from_single_file``.

A model reference (``JobRequest.model``, ``ControlSpec.model``, ``LoraSpec.path``) is ``"tiny"`` (the built-in
smoke-test model, :mod:`t2vz_backend.models.tiny`), a hub id, a local diffusers folder or a single checkpoint
file. :mod:`t2vz_backend.models.files` checks it from its JSON/headers first; this module then loads each
component on its own (UNet, VAE, CLIP text encoder, tokenizer; the scheduler only as its config), so no safety
checker or custom pipeline code is ever instantiated.

Rules:

* Offline (``offline=True`` or ``HF_HUB_OFFLINE=1``): local files only (``local_files_only=True`` everywhere); a hub
  id missing from the local cache fails at once with a ModelLoadError.
* Pickle checkpoints (``.ckpt``/``.bin``/``.pt``/``.pth``, or folders with only ``.bin`` weights) are refused unless
  ``allow_pickle``; ``use_safetensors=True`` is passed otherwise. ``trust_remote_code`` is never set.
* Models are moved to the device and dtype, put in eval mode and frozen (``requires_grad_(False)``). The VAE
  stays in the same dtype as the UNet (SD 1.x VAEs decode correctly in float16, which is also what the reference
  implementation ran): the engine only has to cast latents to ``vae.dtype``; ``force_upcast`` is not applied.
* LoRAs are fused into the weights at their ``scale`` (then the LoRA layers are removed), so attention processors
  see plain ``Linear`` layers. The cache key includes the LoRAs, so a fused model is never reused without them.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from safetensors import SafetensorError

from ..errors import InvalidRequestError, ModelLoadError
from ..model_refs import DEFAULT_CONTROLNETS
from ..protocol import LoraSpec
from ..sampling.schedulers import make_scheduler
from . import files as mf
from .sources import (
    check_controlnet_fits,
    controlnet_config_from_unet,
    controlnet_configs_folder,
    hub_snapshot,
    lora_source,
    single_file_configs,
)
from .tiny import ensure_tiny_models, is_tiny_ref

if TYPE_CHECKING:
    import torch

KINDS = ("sd", "pix2pix")
_LORA_HINT = "use a LoRA trained for the base model's family (SD 1.5 LoRAs for SD 1.5 models)"
_LOAD_ERRORS = (OSError, ValueError, SafetensorError)  # what diffusers/transformers/safetensors raise for bad files
__all__ = ["BaseModel", "default_controlnet_ref", "load_base_model", "load_controlnet", "load_controlnet_entry"]


@dataclass(eq=False)
class BaseModel:
    """The components the engine needs; no pipeline object. Compared by identity (the cache hands out one)."""

    unet: Any  # UNet2DConditionModel
    vae: Any  # AutoencoderKL
    text_encoder: Any  # CLIPTextModel
    tokenizer: Any  # CLIPTokenizer
    scheduler_config: dict[str, Any]  # the model's scheduler config; schedulers are made from it per job
    device: torch.device
    dtype: torch.dtype
    ref: str  # the reference it was loaded from, as given
    kind: str = "sd"  # "sd" (text-to-image UNet, 4 input channels) or "pix2pix" (8 input channels)
    source: str = ""  # where the weights came from: a folder, a file or a hub id
    uses_pickle: bool = False  # some weights came from a pickle file (allowed by the caller)

    @property
    def is_tiny(self) -> bool:
        return is_tiny_ref(self.ref)

    def make_scheduler(self, name: str) -> Any:
        """A fresh scheduler ``name`` (:mod:`t2vz_backend.sampling.schedulers`) from this model's scheduler config."""
        return make_scheduler(name, self.scheduler_config)

    def components(self, scheduler: str = "ddim") -> dict[str, Any]:
        """Keyword arguments for ``StableDiffusionPipeline`` / ``StableDiffusionInstructPix2PixPipeline``."""
        return {"vae": self.vae, "text_encoder": self.text_encoder, "tokenizer": self.tokenizer, "unet": self.unet,
                "scheduler": self.make_scheduler(scheduler), "safety_checker": None, "feature_extractor": None,
                "requires_safety_checker": False}


def load_base_model(ref: str, *, kind: str = "sd", device: str = "auto", dtype: str = "auto", offline: bool = False,
                    allow_pickle: bool = False, loras: tuple[LoraSpec, ...] = (),
                    config: str | None = None) -> BaseModel:
    """Load a base model (UNet, VAE, text encoder, tokenizer, scheduler config) ready for inference.

    Args:
        ref (`str`): "tiny", a hub id, a diffusers pipeline folder or a single ``.safetensors`` checkpoint.
        kind (`str`, defaults to "sd"): "sd" for text-to-image / ControlNet, "pix2pix" for Instruct-Pix2Pix.
        device (`str`, defaults to "auto"), dtype (`str`, defaults to "auto"): see :mod:`t2vz_backend.models.devices`.
        offline (`bool`, defaults to False): local files only; also on when ``HF_HUB_OFFLINE=1``.
        allow_pickle (`bool`, defaults to False): allow pickle checkpoints, which can run code when loaded.
        loras (`tuple[LoraSpec, ...]`): LoRAs fused into the weights at their scales.
        config (`str`, optional): for single-file checkpoints only: a diffusers folder or hub id whose configs and
            tokenizer describe the checkpoint (default: the SD 1.5 / SD 2.1 / Instruct-Pix2Pix repository).

    Raises:
        ModelLoadError: the reference cannot be resolved or is not a usable SD 1.x/2.x model (message names it).
        InvalidRequestError: bad ``kind``, ``device`` or ``dtype``.
    """
    from .devices import resolve_device, resolve_dtype

    if kind not in KINDS:
        raise InvalidRequestError(f"unknown model kind {kind!r}", field="kind", hint=f"use one of {', '.join(KINDS)}")
    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device)
    offline = offline or mf.env_offline()
    parts, source, uses_pickle = _load_parts(ref, kind, offline, allow_pickle, config, torch_dtype)
    mf.check_unet_config(dict(parts["unet"].config), kind=kind, where=repr(ref))  # also covers pickled files
    for name in ("unet", "vae", "text_encoder"):
        _to_device(parts[name], torch_device, torch_dtype)
    if loras:
        uses_pickle = _fuse_loras(parts, loras, offline=offline, allow_pickle=allow_pickle) or uses_pickle
    for name in ("unet", "vae", "text_encoder"):
        parts[name].eval()
        parts[name].requires_grad_(False)
    return BaseModel(device=torch_device, dtype=torch_dtype, ref=ref, kind=kind, source=source,
                     uses_pickle=uses_pickle, **parts)


def load_controlnet(ref: str, *, base: BaseModel, offline: bool = False, allow_pickle: bool = False,
                    config: str | None = None) -> Any:
    """Load a ``ControlNetModel`` that fits ``base`` (same cross-attention dim and channels), on its device/dtype.

    ``ref`` is "tiny", a hub id, a ControlNet folder (``config.json`` + weights, or a pipeline folder with
    ``controlnet/``) or a single checkpoint (original ``control_model.*`` layout or diffusers keys). A single file's
    config is derived from the base UNet and the file's conditioning-embedding shapes unless ``config`` names one.
    """
    return load_controlnet_entry(ref, base=base, offline=offline, allow_pickle=allow_pickle, config=config)[0]


def load_controlnet_entry(ref: str, *, base: BaseModel, offline: bool = False, allow_pickle: bool = False,
                          config: str | None = None) -> tuple[Any, bool]:
    """(ControlNet, whether its weights came from a pickle file): what ``ModelCache`` keeps, so that a pickled
    model is never handed to a caller who did not allow pickle. See :func:`load_controlnet`."""
    from diffusers import ControlNetModel

    offline = offline or mf.env_offline()
    where = f"ControlNet {ref!r}"
    found = mf.classify(ref, what="ControlNet", field_name="controls")
    if found.kind == "file":
        model, pickled = _controlnet_single_file(found.value, base, allow_pickle, config, offline)
    else:
        local_only = found.kind != "hub" or offline
        if found.kind == "tiny":
            folder = ensure_tiny_models().controlnet
        elif found.kind == "folder":
            folder = found.value
        else:  # online: only the configs now (checked first), the weights through from_pretrained
            patterns = None if local_only else ["config.json", "model_index.json", "controlnet/config.json"]
            folder = hub_snapshot(found.value, offline=local_only, what="ControlNet", field_name="controls",
                                  patterns=patterns)
        subfolder, cfg, variant, pickled = controlnet_configs_folder(folder, allow_pickle, require_weights=local_only)
        check_controlnet_fits(cfg, dict(base.unet.config), base.ref, where)
        try:
            model = ControlNetModel.from_pretrained(
                folder if local_only else found.value, subfolder=subfolder, torch_dtype=base.dtype, variant=variant,
                use_safetensors=None if allow_pickle else True, local_files_only=local_only)
        except _LOAD_ERRORS as exc:
            raise _load_error(where, exc, allow_pickle, "controls") from exc
    check_controlnet_fits(dict(model.config), dict(base.unet.config), base.ref, where)
    _to_device(model, base.device, base.dtype)
    model.eval()
    model.requires_grad_(False)
    return model, pickled


def default_controlnet_ref(kind: str, base_ref: str) -> str:
    """The ControlNet used when a ``ControlSpec`` names none: tiny for the tiny base, else the SD 1.5 one."""
    if is_tiny_ref(base_ref):
        return "tiny"
    if kind in DEFAULT_CONTROLNETS:
        return DEFAULT_CONTROLNETS[kind]
    raise ModelLoadError(f"there is no default ControlNet for control kind {kind!r}", field="controls",
                         hint=f"give the ControlNet model (ControlSpec.model), or use one of "
                              f"{', '.join(DEFAULT_CONTROLNETS)}")


def _load_parts(ref: str, kind: str, offline: bool, allow_pickle: bool, config: str | None,
                torch_dtype: torch.dtype) -> tuple[dict[str, Any], str, bool]:
    """(components, source, uses_pickle) of a base model, loaded on the CPU in ``torch_dtype``."""
    found = mf.classify(ref)
    if found.kind == "file":
        return _single_file(found.value, kind, config, offline, allow_pickle, torch_dtype)
    if found.kind == "hub" and not offline:  # configs first (small, checked), then diffusers fetches the weights
        configs = hub_snapshot(found.value, offline=False, what="model", patterns=mf.CONFIG_PATTERNS)
        info = mf.check_pipeline_folder(configs, kind=kind, allow_pickle=allow_pickle, require_weights=False)
        parts = _pretrained(found.value, configs, info, False, allow_pickle, torch_dtype)
        # the weights landed in the same snapshot folder: pickle ones were used where no safetensors came
        pickled = allow_pickle and any(not mf.weight_files(os.path.join(configs, name))[0]
                                       for name in ("unet", "vae", "text_encoder"))
        return parts, found.value, pickled
    if found.kind == "tiny":
        folder = ensure_tiny_models().pix2pix if kind == "pix2pix" else ensure_tiny_models().sd
    elif found.kind == "hub":
        folder = hub_snapshot(found.value, offline=True, what="model")
    else:
        folder = found.value
    info = mf.check_pipeline_folder(folder, kind=kind, allow_pickle=allow_pickle)
    return _pretrained(folder, folder, info, True, allow_pickle, torch_dtype), folder, info.uses_pickle


def _pretrained(source: str, configs: str, info: mf.FolderInfo, local_only: bool, allow_pickle: bool,
                torch_dtype: torch.dtype) -> dict[str, Any]:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    common = {"local_files_only": local_only, "use_safetensors": None if allow_pickle else True}
    try:
        unet = UNet2DConditionModel.from_pretrained(source, subfolder="unet", torch_dtype=torch_dtype,
                                                    variant=info.variants.get("unet"), **common)
        vae = AutoencoderKL.from_pretrained(source, subfolder="vae", torch_dtype=torch_dtype,
                                            variant=info.variants.get("vae"), **common)
        text_encoder = CLIPTextModel.from_pretrained(source, subfolder="text_encoder", dtype=torch_dtype,
                                                     variant=info.variants.get("text_encoder"), **common)
        tokenizer = CLIPTokenizer.from_pretrained(source, subfolder="tokenizer", local_files_only=local_only)
    except _LOAD_ERRORS as exc:
        raise _load_error(f"model {source!r}", exc, allow_pickle, "model") from exc
    scheduler_config = mf.read_json(os.path.join(configs, "scheduler", "scheduler_config.json"), "scheduler config")
    return {"unet": unet, "vae": vae, "text_encoder": text_encoder, "tokenizer": tokenizer,
            "scheduler_config": scheduler_config}


def _single_file(path: str, kind: str, config: str | None, offline: bool, allow_pickle: bool,
                 torch_dtype: torch.dtype) -> tuple[dict[str, Any], str, bool]:
    """An original-layout (LDM) SD checkpoint, converted by ``from_single_file`` with local diffusers configs."""
    from diffusers import StableDiffusionInstructPix2PixPipeline, StableDiffusionPipeline

    pickled = mf.check_file_type(path, allow_pickle, "model", "model")
    dim = None if pickled else mf.inspect_checkpoint(path, kind=kind)
    configs = single_file_configs(path, config, kind=kind, cross_attention_dim=dim, offline=offline)
    cls = StableDiffusionInstructPix2PixPipeline if kind == "pix2pix" else StableDiffusionPipeline
    try:  # configs are local now and the checkpoint is a local file: nothing is downloaded
        pipe = cls.from_single_file(path, config=configs, local_files_only=True, torch_dtype=torch_dtype,
                                    safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    except (*_LOAD_ERRORS, KeyError, RuntimeError) as exc:
        raise _damaged_or(exc, path, "model", ModelLoadError(
            f"cannot load checkpoint {path!r} with the configs of {configs!r}: {exc}", field="model",
            hint="check that model_config describes this checkpoint's architecture")) from exc
    parts = {"unet": pipe.unet, "vae": pipe.vae, "text_encoder": pipe.text_encoder, "tokenizer": pipe.tokenizer,
             "scheduler_config": dict(pipe.scheduler.config)}
    return parts, path, pickled


def _controlnet_single_file(path: str, base: BaseModel, allow_pickle: bool, config: str | None,
                            offline: bool) -> tuple[Any, bool]:
    import inspect
    import json

    from diffusers import ControlNetModel

    pickled = mf.check_file_type(path, allow_pickle, "ControlNet", "controls")
    with tempfile.TemporaryDirectory(prefix="t2vz-controlnet-config-") as scratch:
        if config:  # a ControlNet folder or hub id whose config.json describes the file
            found = mf.classify(config, what="config", field_name="controls")
            if found.kind == "file":
                raise ModelLoadError(f"config {config!r} is a file", field="controls",
                                     hint="give a ControlNet folder (config.json) or a hub id")
            folder = {"tiny": ensure_tiny_models().controlnet, "folder": found.value}.get(found.kind) or hub_snapshot(
                found.value, offline=offline, what="config", field_name="controls", patterns=["config.json"])
        else:  # an original ControlNet mirrors its UNet: derive the config from the base model and the file
            channels, conditioning = ((16, 32, 96, 256), 3) if pickled else mf.controlnet_conditioning(
                mf.read_safetensors_header(path, "controls"), path)
            folder = scratch
            with open(os.path.join(scratch, "config.json"), "w", encoding="utf-8") as handle:
                accepted = set(inspect.signature(ControlNetModel.__init__).parameters)
                json.dump(controlnet_config_from_unet(dict(base.unet.config), accepted, channels, conditioning),
                          handle)
        try:
            model = ControlNetModel.from_single_file(path, config=folder, local_files_only=True,
                                                     torch_dtype=base.dtype)
        except (*_LOAD_ERRORS, KeyError, RuntimeError) as exc:
            raise _damaged_or(exc, path, "controls", ModelLoadError(
                f"cannot load ControlNet checkpoint {path!r}: {exc}", field="controls",
                hint="check that it is a ControlNet for the base model's family")) from exc
    return model, pickled


def _fuse_loras(parts: dict[str, Any], loras: tuple[LoraSpec, ...], *, offline: bool, allow_pickle: bool) -> bool:
    """Load every LoRA as a peft adapter, weight them by scale, fuse into the weights and drop the adapters."""
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline(vae=parts["vae"], text_encoder=parts["text_encoder"], tokenizer=parts["tokenizer"],
                                   unet=parts["unet"], scheduler=make_scheduler("ddim", parts["scheduler_config"]),
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    names, uses_pickle = [], False
    for i, spec in enumerate(loras):
        field_name, name = f"loras[{i}].path", f"t2vz_lora_{i}"
        source, weight_name, pickled = lora_source(spec.path, offline=offline, allow_pickle=allow_pickle,
                                                   field_name=field_name)
        uses_pickle = uses_pickle or pickled
        try:
            pipe.load_lora_weights(source, weight_name=weight_name, adapter_name=name, local_files_only=offline,
                                   use_safetensors=not pickled)
        except (*_LOAD_ERRORS, KeyError, RuntimeError) as exc:
            error = ModelLoadError(f"LoRA {spec.path!r} cannot be applied to this model: {exc}", field=field_name,
                                   hint=_LORA_HINT)
            raise _damaged_or(exc, spec.path, field_name, error) from exc
        if not any(name in adapters for adapters in pipe.get_list_adapters().values()):
            raise ModelLoadError(f"LoRA {spec.path!r} matched no layer of the model", field=field_name,
                                 hint=_LORA_HINT)
        names.append(name)
    pipe.set_adapters(names, adapter_weights=[float(spec.scale) for spec in loras])
    components = [c for c, adapters in pipe.get_list_adapters().items() if adapters]
    pipe.fuse_lora(components=components, lora_scale=1.0, adapter_names=names)
    pipe.unload_lora_weights()  # keeps the fused weights, removes the peft layers
    return uses_pickle


def _load_error(where: str, exc: Exception, allow_pickle: bool, field_name: str) -> ModelLoadError:
    """The truth about a failed load: a missing .safetensors file (only pickle ones on the hub) is the one case for
    the pickle hint; anything else (a damaged file included) is a file to download again."""
    text = str(exc)
    missing = "safetensors" in text and ("no file named" in text or "does not appear to have a file named" in text)
    if missing and not allow_pickle and not isinstance(exc, SafetensorError):
        return ModelLoadError(f"{where} has no .safetensors weights: {exc}", field=field_name, hint=mf.PICKLE_HINT)
    if isinstance(exc, SafetensorError):
        return mf.damaged_error(where, exc, field_name)
    return ModelLoadError(f"cannot load {where}: {exc}", field=field_name,
                          hint="the model files may be damaged or incomplete (an interrupted download?): download "
                               "them again, or turn offline mode off to fetch them")


def _damaged_or(exc: Exception, path: str, field_name: str, error: ModelLoadError) -> ModelLoadError:
    """``error``, unless safetensors found ``path`` damaged: then say so (and never suggest pickle)."""
    return mf.damaged_error(path, exc, field_name) if isinstance(exc, SafetensorError) else error


def _to_device(module: Any, device: torch.device, dtype: torch.dtype) -> None:
    if module.dtype != dtype:
        module.to(dtype=dtype)
    module.to(device)
