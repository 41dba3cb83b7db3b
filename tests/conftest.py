"""Shared test set-up: offline, deterministic, importable from the repo root."""

from __future__ import annotations

import os
import sys
from pathlib import Path

# Nothing in the tests may reach a model hub: every model is built in code by the tests or by t2vz_backend.models.tiny.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# The built-in tiny model is built once per test session into a private cache (also seen by worker subprocesses).
if "T2VZ_CACHE" not in os.environ:
    import tempfile

    os.environ["T2VZ_CACHE"] = tempfile.mkdtemp(prefix="t2vz-test-cache-")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_paths():
    from t2vz_backend.models.tiny import ensure_tiny_models

    return ensure_tiny_models()


@pytest.fixture(scope="session")
def tiny_sd(tiny_paths):
    """The tiny SD model loaded through the same loader a user's model takes (CPU, float32)."""
    from t2vz_backend.models.loading import load_base_model

    return load_base_model("tiny", device="cpu", dtype="float32")


@pytest.fixture(scope="session")
def tiny_pix2pix(tiny_paths):
    from t2vz_backend.models.loading import load_base_model

    return load_base_model("tiny", kind="pix2pix", device="cpu", dtype="float32")


@pytest.fixture(scope="session")
def tiny_controlnet(tiny_sd):
    from t2vz_backend.models.loading import default_controlnet_ref, load_controlnet

    return load_controlnet(default_controlnet_ref("canny", "tiny"), base=tiny_sd)


@pytest.fixture(scope="module")
def maps_dir(tmp_path_factory) -> str:
    """Four 64x64 control maps (a white box moving down), for the tiny ControlNet."""
    import numpy as np
    from PIL import Image

    folder = tmp_path_factory.mktemp("maps")
    for k in range(4):
        image = np.zeros((64, 64, 3), np.uint8)
        image[8 + 6 * k:30 + 6 * k, 10:44] = 255
        Image.fromarray(image).save(folder / f"map_{k:02d}.png")
    return str(folder)
