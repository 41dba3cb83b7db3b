"""Device and precision: turn the request's ``device``/``dtype`` strings into torch objects, and describe them.

"auto" prefers an accelerator (CUDA, then Apple MPS) and falls back to the CPU; its dtype is float16 on an
accelerator (what SD 1.5 checkpoints are usually run in) and float32 on the CPU (diffusers' "usability over
performance": CPU half precision is slow and not what users expect). An explicit choice is honoured where the
device supports it and refused with a clear error where it does not, instead of being silently changed.

torch is imported inside the functions: this module is imported by code that must stay importable without torch.
"""

from __future__ import annotations

import gc
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from ..errors import InvalidRequestError
from ..validation import DTYPES

if TYPE_CHECKING:
    import torch


def resolve_device(device: str = "auto") -> torch.device:
    """``"auto"`` -> cuda, else mps, else cpu; ``"cuda"``, ``"cuda:N"``, ``"mps"``, ``"cpu"`` are checked to exist."""
    import torch

    name = (device or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(name)
    except (RuntimeError, ValueError):
        raise InvalidRequestError(
            f"unknown device {device!r}", field="device", hint="use auto, cpu, cuda, cuda:N or mps"
        ) from None
    if resolved.type == "cpu":
        return resolved
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise InvalidRequestError(
                f"device {device!r} was asked for, but this torch ({torch.__version__}) sees no CUDA GPU",
                field="device",
                hint="install a CUDA build of torch and an NVIDIA driver, or choose device 'auto' or 'cpu'",
            )
        count = torch.cuda.device_count()
        if resolved.index is not None and resolved.index >= count:
            raise InvalidRequestError(
                f"device {device!r} does not exist: this machine has {count} CUDA device(s)",
                field="device",
                hint=f"use cuda:0 .. cuda:{count - 1}",
            )
        return resolved
    if resolved.type == "mps":
        if not _mps_available():
            raise InvalidRequestError(
                f"device {device!r} was asked for, but Apple MPS is not available here",
                field="device",
                hint="MPS needs an Apple-silicon Mac and macOS 12.3+; choose 'auto' or 'cpu'",
            )
        return resolved
    raise InvalidRequestError(f"unsupported device {device!r}", field="device", hint="use auto, cpu, cuda or mps")


def resolve_dtype(dtype: str, device: torch.device | str) -> torch.dtype:
    """``"auto"`` -> float16 on cuda/mps, float32 on cpu; ``"bfloat16"`` only where the device supports it."""
    import torch

    device = torch.device(device) if isinstance(device, str) else device
    name = (dtype or "auto").strip().lower()
    if name == "auto":
        return torch.float32 if device.type == "cpu" else torch.float16
    if name not in DTYPES:
        raise InvalidRequestError(f"unknown dtype {dtype!r}", field="dtype", hint=f"use one of {', '.join(DTYPES)}")
    if name == "bfloat16" and not _bf16_supported(device):
        raise InvalidRequestError(
            f"bfloat16 is not supported on {device}",
            field="dtype",
            hint="use float16 (or auto); bfloat16 needs an Ampere or newer NVIDIA GPU, a recent Mac, or the CPU",
        )
    return getattr(torch, name)


@dataclass(frozen=True)
class DeviceInfo:
    """What a ping or ``check`` reports about the compute device."""

    torch: str  # torch version
    device: str  # resolved device, e.g. "cuda:0", "mps", "cpu"
    name: str  # human-readable device name, e.g. "NVIDIA H100 80GB HBM3"
    dtype: str  # what dtype "auto" resolves to on it
    vram_total_gb: float = 0.0  # 0 where unknown (CPU, MPS)
    vram_free_gb: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """One line, e.g. ``"cuda:0 (NVIDIA H100, 79.1 GB, 78.5 GB free), torch 2.13.0, auto dtype float16"``."""
        memory = f", {self.vram_total_gb:.1f} GB, {self.vram_free_gb:.1f} GB free" if self.vram_total_gb else ""
        return f"{self.device} ({self.name}{memory}), torch {self.torch}, auto dtype {self.dtype}"


def describe_device(device: str = "auto") -> DeviceInfo:
    """Resolve ``device`` and describe it (name, VRAM) without loading any model."""
    import platform

    import torch

    resolved = resolve_device(device)
    total = free = 0.0
    if resolved.type == "cuda":
        index = resolved.index if resolved.index is not None else torch.cuda.current_device()
        resolved = torch.device("cuda", index)
        name = torch.cuda.get_device_name(index)
        free_bytes, total_bytes = torch.cuda.mem_get_info(index)
        total, free = total_bytes / 1e9, free_bytes / 1e9
    elif resolved.type == "mps":
        name = f"Apple MPS ({platform.machine()})"
    else:
        name = platform.processor() or platform.machine() or "CPU"
        name = f"CPU {name}, {torch.get_num_threads()} threads"
    dtype = str(resolve_dtype("auto", resolved)).removeprefix("torch.")
    return DeviceInfo(torch=torch.__version__, device=str(resolved), name=name, dtype=dtype,
                      vram_total_gb=round(total, 2), vram_free_gb=round(free, 2))


def free_memory() -> None:
    """Collect garbage and hand cached accelerator memory back to the driver (after models are dropped)."""
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    if _mps_available():
        torch.mps.empty_cache()


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def _bf16_supported(device: torch.device) -> bool:
    import torch

    if device.type == "cpu":
        return True  # slow without AVX512-BF16/AMX, but correct
    if device.type == "cuda":
        # emulated bf16 (pre-Ampere) is slower than fp16 and not what the user asked for
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    if device.type == "mps":
        try:  # older macOS versions raise on bfloat16 MPS tensors
            torch.zeros(1, dtype=torch.bfloat16, device=device)
        except (RuntimeError, TypeError):
            return False
        return True
    return False
