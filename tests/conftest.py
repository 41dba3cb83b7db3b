"""Shared test set-up: offline, deterministic, importable from the repo root."""

from __future__ import annotations

import os
import sys
from pathlib import Path

# Nothing in the tests may reach a model hub: every model is built in code by the tests or by t2vz_backend.tiny.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
