"""Logs the user can read and copy inside Blender: Text datablocks (Text Editor > t2vz_*)."""

from __future__ import annotations

from typing import Any

import bpy

JOB_LOG = "t2vz_log"
INSTALL_LOG = "t2vz_install.log"


def text_block(name: str) -> Any:
    return bpy.data.texts.get(name) or bpy.data.texts.new(name)


def write(name: str, text: str, *, append: bool = True) -> Any:
    """Append (or replace) ``text`` in the Text datablock ``name``; returns the datablock."""
    block = text_block(name)
    if not append:
        block.clear()
    block.write(text if text.endswith("\n") else text + "\n")
    return block
