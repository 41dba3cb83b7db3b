"""CLIP frame consistency and CLIP text alignment, when a CLIP model is on hand.

- **frame consistency**: the mean cosine similarity of consecutive frames' CLIP image embeddings (1 = the same
  picture to CLIP), as ControlVideo, Rerender-A-Video and FateZero report it;
- **text alignment**: 100 x the mean cosine similarity between each frame's embedding and its prompt's ("CLIP
  score", the number Text2Video-Zero reports). A static clip scores perfectly on consistency, which is why the
  report always shows both next to the warp error.

The model is a hub id or a local folder (``transformers`` CLIPModel layout: ``config.json``, weights, tokenizer and
``preprocessor_config.json``), given by the user. A hub id is looked up in the local Hugging Face cache first and
downloaded only when online (models/sources.py); offline, a model that is not on disk is simply "not computed",
never fetched. Weights load as safetensors unless the job allows pickle. Frames are embedded one at a time while
the report streams the clip, so the clip is never held in memory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ModelLoadError, T2VZError

CLIP_FIELD = "report_clip"


@dataclass(frozen=True)
class ClipStatus:
    """Whether the CLIP metrics were computed, with which model, or why not."""

    computed: bool
    model: str = ""
    reason: str = ""


class ClipScorer:
    """A loaded CLIP model that embeds frames and prompts (unit vectors)."""

    def __init__(self, ref: str, model: Any, tokenizer: Any, processor: Any, device: Any) -> None:
        self.ref, self.model, self.tokenizer, self.processor, self.device = ref, model, tokenizer, processor, device
        self._text: dict[str, np.ndarray] = {}

    def image(self, frame: np.ndarray) -> np.ndarray:
        import torch

        pixels = self.processor(images=[frame], return_tensors="pt")["pixel_values"]
        with torch.no_grad():
            features = self.model.get_image_features(pixel_values=pixels.to(self.device, self.model.dtype))
        return _unit(features)

    def text(self, prompt: str) -> np.ndarray:
        if prompt not in self._text:
            import torch

            tokens = self.tokenizer([prompt], padding=True, truncation=True, return_tensors="pt")
            with torch.no_grad():
                features = self.model.get_text_features(input_ids=tokens["input_ids"].to(self.device),
                                                        attention_mask=tokens["attention_mask"].to(self.device))
            self._text[prompt] = _unit(features)
        return self._text[prompt]


def _unit(features: Any) -> np.ndarray:
    tensor = features if hasattr(features, "float") else features.pooler_output  # transformers 5 returns outputs
    vector = tensor[0].float().cpu().numpy().astype(np.float64)
    return vector / max(float(np.linalg.norm(vector)), 1e-12)


def load_clip(ref: str, *, offline: bool, allow_pickle: bool = False, device: str = "cpu"
              ) -> tuple[ClipScorer | None, ClipStatus]:
    """The scorer for ``ref``, or None and the reason it is not computed (no model set, not on disk offline, ...)."""
    if not ref:
        return None, ClipStatus(False, reason="no CLIP model set (report_clip: a hub id or a local folder)")
    try:
        folder = _model_folder(ref, offline=offline, allow_pickle=allow_pickle)
        return _load(ref, folder, allow_pickle, device), ClipStatus(True, model=ref)
    except T2VZError as exc:
        return None, ClipStatus(False, model=ref, reason=str(exc))


def _model_folder(ref: str, *, offline: bool, allow_pickle: bool) -> str:
    from ..models import files as mf
    from ..models.sources import hub_snapshot

    where = mf.classify(ref, what="CLIP model", field_name=CLIP_FIELD)
    if where.kind == "hub":
        patterns = ["*.json", "*.txt", "*.safetensors"] + (["*.bin"] if allow_pickle else [])
        return hub_snapshot(where.value, offline=offline or mf.env_offline(), what="CLIP model",
                            field_name=CLIP_FIELD, patterns=patterns)
    if where.kind != "folder":
        raise ModelLoadError(f"CLIP model {ref!r} is not a folder or a hub id", field=CLIP_FIELD,
                        hint="give a transformers CLIP folder (config.json, model.safetensors, tokenizer files)")
    return where.value


def _load(ref: str, folder: str, allow_pickle: bool, device: str) -> ClipScorer:
    if not allow_pickle and not any(name.endswith(".safetensors") for name in os.listdir(folder)):
        from ..models.files import pickle_error

        raise pickle_error(folder, "CLIP model", CLIP_FIELD)
    from ..models.devices import resolve_device

    try:
        import transformers
        from transformers import AutoTokenizer, CLIPModel

        processor_class = getattr(transformers, "CLIPImageProcessorPil", None) or transformers.CLIPImageProcessor
        target = resolve_device(device)
        model = CLIPModel.from_pretrained(folder, local_files_only=True, use_safetensors=None if allow_pickle else True)
        model = model.to(target).eval()
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        processor = processor_class.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"CLIP model {ref!r} could not be loaded: {str(exc).splitlines()[0][:200]}",
                        field=CLIP_FIELD, hint="give a transformers CLIP model folder or hub id") from None
    return ClipScorer(ref, model, tokenizer, processor, target)


@dataclass
class ClipTally:
    """Running CLIP figures of a streamed clip: only the previous frame's embedding is kept."""

    scorer: ClipScorer
    consistency: list[float] = field(default_factory=list)  # per pair
    alignment: list[float] = field(default_factory=list)  # per frame, x100
    _previous: np.ndarray | None = None

    def add(self, frame: np.ndarray, prompt: str) -> None:
        embedding = self.scorer.image(frame)
        if self._previous is not None:
            self.consistency.append(float(embedding @ self._previous))
        if prompt:
            self.alignment.append(100.0 * float(embedding @ self.scorer.text(prompt)))
        self._previous = embedding
