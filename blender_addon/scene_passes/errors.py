"""The error that scene-pass exports raise: something about the scene the user can fix (message + hint)."""

from __future__ import annotations

from ..core.errors import T2VZAddonError


class SceneError(T2VZAddonError):
    """The scene cannot give the requested control maps: no camera, an empty frame range, an unknown rig ..."""
