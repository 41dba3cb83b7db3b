"""The scene settings of a job: one PropertyGroup behind ``Scene.t2vz``, built from ``core/settings_table.py``.

Every property's default, bounds and choices come from the backend contract when this module is imported (in
``register()``; it only reads dataclasses and tables). Settings whose contract default differs per mode (steps,
guidance) live in one small group per mode, ``Scene.t2vz.<mode group>`` (``text2video``, ``controlnet``, ...);
``Scene.t2vz.<name>`` reads and writes the current mode's value (a Python property), so ``settings.steps`` always
means "the steps of the mode shown". Draw code uses ``settings_table.owner(settings, name)`` for ``layout.prop``.
See ``core/contract.py`` for why per-mode values are groups.
"""

import bpy
from bpy.props import (
    BoolProperty,
    EnumProperty,
    FloatProperty,
    FloatVectorProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)

from .core import contract, modes, settings_table

PROPERTY_FUNCTIONS = {"bool": BoolProperty, "int": IntProperty, "float": FloatProperty,
                      "vector": FloatVectorProperty, "string": StringProperty, "enum": EnumProperty,
                      "pointer": PointerProperty}


def bpy_property(spec: contract.PropSpec):
    """The ``bpy.props`` definition of ``spec`` (a pointer's ``type`` names a ``bpy.types`` class)."""
    kwargs = dict(spec.kwargs)
    if spec.kind == "pointer":
        kwargs["type"] = getattr(bpy.types, kwargs["type"])
    return PROPERTY_FUNCTIONS[spec.kind](**kwargs)


def annotations(table, mode: str | None = None, names=None) -> dict:
    """Properties for the settings of ``table`` (only ``names`` when given), with ``mode``'s defaults (else the
    first mode each setting applies to)."""
    return {s.name: bpy_property(contract.prop_spec(s, mode or s.modes[0]))
            for s in table if (names is None or s.name in names) and (mode is None or mode in s.modes)}


def _current_mode_value(name: str) -> property:
    def get(self):
        return getattr(getattr(self, modes.get(self.mode).group), name)

    def set_(self, value) -> None:
        setattr(getattr(self, modes.get(self.mode).group), name, value)

    return property(get, set_, doc=f"{name} of the current mode (stored in Scene.t2vz.<mode group>.{name})")


def _mode_group(mode: modes.Mode) -> type:
    return type(f"T2VZ_PG_{mode.group}", (bpy.types.PropertyGroup,), {
        "__doc__": f"The {mode.label} settings whose contract defaults are this mode's own",
        "__annotations__": annotations(settings_table.SCENE_SETTINGS, mode.key, settings_table.PER_MODE),
    })


MODE_GROUPS = tuple(_mode_group(mode) for mode in modes.MODES)
_SHARED = [name for name in settings_table.SCENE_BY_NAME if name not in settings_table.PER_MODE]
T2VZ_PG_settings = type("T2VZ_PG_settings", (bpy.types.PropertyGroup,), {
    "__doc__": "T2V-Zero video generation settings",
    "__annotations__": {
        "mode": EnumProperty(name="Mode", description="What to generate", default=modes.MODES[0].key,
                             items=[(m.key, m.label, m.description, m.icon, i) for i, m in enumerate(modes.MODES)]),
        **annotations(settings_table.SCENE_SETTINGS, names=_SHARED),
        **{mode.group: PointerProperty(type=group, name=mode.label)
           for mode, group in zip(modes.MODES, MODE_GROUPS, strict=True)},
    },
    **{name: _current_mode_value(name) for name in settings_table.PER_MODE},
})

classes = (*MODE_GROUPS, T2VZ_PG_settings)


def register() -> None:
    for cls in classes:
        bpy.utils.register_class(cls)
    bpy.types.Scene.t2vz = PointerProperty(type=T2VZ_PG_settings, name="T2V-Zero",
                                           description="T2V-Zero video generation settings")


def unregister() -> None:
    del bpy.types.Scene.t2vz
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
