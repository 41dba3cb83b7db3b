"""A test helper: where the bpy wheel keeps Rigify's human metarig script (found without importing bpy)."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def rigify_human_metarig() -> Path | None:
    """Rigify's human metarig script inside the installed bpy wheel, if any."""
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        return None
    found = sorted(Path(spec.submodule_search_locations[0]).glob("*/scripts/addons_core/rigify/metarigs/human.py"))
    return found[-1] if found else None
