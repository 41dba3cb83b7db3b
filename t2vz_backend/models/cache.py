"""Keep loaded models between jobs: the worker owns one :class:`ModelCache`.

Loading SD 1.5 takes seconds to minutes; a worker that serves several jobs reuses the models as long as the job
asks for the same thing. The key of a base model is (ref, kind, device, dtype, loras, config), with device and
dtype resolved (so "auto" and what it resolves to share an entry) and local paths made absolute.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from . import files as mf

if TYPE_CHECKING:
    from ..protocol import LoraSpec
    from .loading import BaseModel


class ModelCache:
    """Loaded base models and ControlNets, by key.

    Only ``max_bases`` base models are kept: loading another first drops the least recently used one together with
    its ControlNets (a second SD model rarely fits in VRAM next to the first). ControlNets are keyed by (ref,
    base model, config).
    """

    def __init__(self, max_bases: int = 1) -> None:
        self.max_bases = max(1, max_bases)
        self._bases: OrderedDict[tuple, tuple[BaseModel, bool]] = OrderedDict()
        self._controlnets: dict[tuple, tuple[Any, bool]] = {}  # key -> (model, uses pickle)

    def base(self, ref: str, *, kind: str = "sd", device: str = "auto", dtype: str = "auto", offline: bool = False,
             allow_pickle: bool = False, loras: tuple[LoraSpec, ...] = (), config: str | None = None) -> BaseModel:
        """The cached base model for this key, loading it with :func:`~t2vz_backend.models.loading.load_base_model` on a
        miss. ``offline`` does not take part in the key (a loaded model needs no network); a model that needed
        ``allow_pickle`` is refused to a caller who did not allow it, exactly as a fresh load would be."""
        from .devices import resolve_device, resolve_dtype
        from .loading import load_base_model

        torch_device = resolve_device(device)
        key = (_norm(ref), kind, str(torch_device), str(resolve_dtype(dtype, torch_device)),
               tuple((_norm(lora.path), float(lora.scale)) for lora in loras), _norm(config))
        entry = self._bases.get(key)
        if entry is not None:
            model, pickled = entry
            if pickled and not allow_pickle:
                raise mf.pickle_error(ref)
            self._bases.move_to_end(key)
            return model
        while len(self._bases) >= self.max_bases:
            _, (dropped, _) = self._bases.popitem(last=False)
            self._controlnets = {k: v for k, v in self._controlnets.items() if k[1] is not dropped}
            del dropped
            _free()
        model = load_base_model(ref, kind=kind, device=device, dtype=dtype, offline=offline,
                                allow_pickle=allow_pickle, loras=loras, config=config)
        self._bases[key] = (model, model.uses_pickle)
        return model

    def controlnet(self, ref: str, *, base: BaseModel, offline: bool = False, allow_pickle: bool = False,
                   config: str | None = None) -> Any:
        """The cached ControlNet ``ref`` for ``base`` (on its device and dtype), loading it on a miss."""
        from .loading import load_controlnet_entry

        key = (_norm(ref), base, _norm(config))
        entry = self._controlnets.get(key)
        if entry is None:
            entry = load_controlnet_entry(ref, base=base, offline=offline, allow_pickle=allow_pickle, config=config)
            self._controlnets[key] = entry
        elif entry[1] and not allow_pickle:
            raise mf.pickle_error(ref, "ControlNet", "controls")
        return entry[0]

    def clear(self) -> int:
        """Drop every cached model, collect garbage and empty the CUDA/MPS cache; return how many were dropped."""
        count = len(self)
        self._bases.clear()
        self._controlnets.clear()
        _free()
        return count

    def __len__(self) -> int:
        return len(self._bases) + len(self._controlnets)


def _norm(ref: str | None) -> str:
    """Local paths as absolute real paths (two spellings of one folder share an entry); other refs as given."""
    if not ref or ref == "tiny":
        return ref or ""
    path = os.path.expanduser(ref)
    return os.path.realpath(path) if os.path.exists(path) else ref


def _free() -> None:
    from .devices import free_memory

    free_memory()
