"""Model references as the contract reads them: checkpoint suffixes, the path-or-hub-id rule, the default models.

A model reference (``JobRequest.model``, ``model_config``, ``ControlSpec.model``, ``LoraSpec.path``) is ``"tiny"``,
a hub id (``org/name``), a local folder or a single checkpoint file. Validation (no disk access beyond ``exists``),
the loader (``models/files.py``) and the Blender add-on all tell them apart with the functions here, so the three
can never disagree. Standard library only: the add-on ships this module.
"""

from __future__ import annotations

import re

TINY = "tiny"  # the built-in random-weight smoke-test model (models/tiny.py)
SAFE_SUFFIX = ".safetensors"
PICKLE_SUFFIXES = (".ckpt", ".bin", ".pt", ".pth", ".pkl")  # loaded only with allow_pickle: they can run code
CHECKPOINT_SUFFIXES = (SAFE_SUFFIX, *PICKLE_SUFFIXES)

# The models a user gets without choosing: the add-on's preferences start with these, single-file checkpoints
# borrow their configs, and a ControlSpec without a model uses the one for its kind.
DEFAULT_BASE_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"
DEFAULT_PIX2PIX_MODEL = "timbrooks/instruct-pix2pix"
DEFAULT_CONTROLNETS = {
    "canny": "lllyasviel/sd-controlnet-canny",
    "depth": "lllyasviel/sd-controlnet-depth",
    "pose": "lllyasviel/sd-controlnet-openpose",
}
# The few-step LoRA the add-on's Draft preset applies (README "Speed"): TCD for SD 1.5, sampled with "tcd".
DEFAULT_FEW_STEP_LORA = "h1t/TCD-SD15-LoRA"

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_DRIVE = re.compile(r"^[A-Za-z]:")


def is_checkpoint_file(ref: str) -> bool:
    """True when ``ref`` names a single checkpoint file (any suffix the loader reads, safe or pickle)."""
    return ref.lower().endswith(CHECKPOINT_SUFFIXES)


def is_pickle_file(ref: str) -> bool:
    return ref.lower().endswith(PICKLE_SUFFIXES)


def looks_like_path(ref: str) -> bool:
    """True when ``ref`` is written as a path (so it must exist), False for ``"tiny"`` and hub-id-shaped names.

    A path starts with ``.``, ``~``, ``/``, ``\\`` or a drive letter, has a backslash or more than one ``/``, or ends
    with a checkpoint suffix. ``org/name`` is read as a hub id unless a folder of that name exists (callers check
    the disk first where that matters).
    """
    if ref == TINY:
        return False
    return (ref.startswith((".", "~", "/", "\\")) or "\\" in ref or ref.count("/") > 1 or is_checkpoint_file(ref)
            or _DRIVE.match(ref) is not None)


def is_hub_id(ref: str) -> bool:
    """True when ``ref`` has the shape of a Hugging Face hub id (``org/name``) and is not written as a path."""
    return not looks_like_path(ref) and _HUB_ID.match(ref) is not None
