"""The add-on's settings, derived from the backend contract: defaults, bounds and choices are never written here.

A :class:`Setting` names the request field(s) it fills and the modes it applies to; everything a property shows is
read from the contract when the add-on registers:

- **default**: the field's default in the mode's request class (``protocol.TextToVideoRequest.steps`` is 50,
  ``ControlVideoRequest.steps`` 20), times ``scale`` (motion is shown in percent of the frame). Settings without a
  field (add-on-owned, like the scene passes) carry their own ``default``; a few defaults are *derived* by a stated
  rule (``derive``: Fit Source is on because the source modes' width/height default is 0 = "from the input").
- **bounds**: ``validation.LIMITS[field]``, clamped to what the property type can hold (:func:`held_range`).
- **choices**: ``validation.CHOICES[field]`` (identifiers are the contract's values; ``labels`` only dresses them).

Per-mode values. A setting whose contract default differs between the modes it applies to (steps, guidance) is
stored once per mode, in that mode's settings group (``Scene.t2vz.text2video.steps``); every other setting is
stored once. Why groups and not one property re-defaulted on mode change: Blender keeps one default per property
class, so per-mode defaults need a class per mode; switching modes then only changes which group is read, so a
value set in one mode is never clobbered by another mode's default, and Reset to Default gives each mode its own
contract default. The split is computed (:func:`is_per_mode`), so a contract change that gives one mode its own
default makes that setting per-mode without touching the add-on. ``Scene.t2vz.<name>`` reads and writes the
current mode's value either way (see ``properties.py``), so code and scripts never care where a value lives.

No bpy: ``properties.py``/``preferences.py`` turn :func:`prop_spec` into ``bpy.props`` calls.
"""

from __future__ import annotations

import dataclasses
import functools
import struct
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..backend.t2vz_backend import protocol, validation
from . import modes
from .errors import T2VZAddonError

INT_MIN, INT_MAX = -(2**31), 2**31 - 1  # Blender's IntProperty holds a C int
FLOAT_MAX = 3.4028234663852886e38  # FloatProperty stores a C float
NESTED = {"controls": protocol.ControlSpec, "loras": protocol.LoraSpec}  # "controls.scale" = each ControlSpec's


@dataclass(frozen=True)
class Setting:
    """One add-on setting and the request field(s) it fills. See the module docstring for where values come from."""

    name: str  # the property name (Scene.t2vz.<name> or the add-on preferences' <name>)
    label: str
    description: str  # the tooltip
    fields: tuple[str, ...] = ()  # request fields it fills, in vector order; () = add-on-owned
    modes: tuple[str, ...] = modes.KEYS  # the modes whose requests it fills
    by_mode: Mapping[str, str] = field(default_factory=dict)  # mode -> field, where it differs (prompt/instruction)
    scale: float = 1.0  # setting value = field value * scale
    derive: Callable[[modes.Mode], Any] | None = None  # the default, by a stated rule from the mode's request
    default: Any = None  # add-on-owned settings only
    kind: str = ""  # add-on-owned settings only: bool, int, float, string, enum, pointer
    items: tuple[tuple[str, str, str], ...] = ()  # add-on-owned enums only: (identifier, label, description)
    labels: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # contract choice -> (label, description)
    ui: Mapping[str, Any] = field(default_factory=dict)  # more bpy.props keywords: subtype, precision, step, type
    cli: bool = True  # offered as an option of ``blender -c t2vz generate``

    def fields_for(self, mode: str) -> tuple[str, ...]:
        return (self.by_mode[mode],) if mode in self.by_mode else self.fields


@dataclass(frozen=True)
class PropSpec:
    """What a ``bpy.props`` call needs: the property function's kind and its keywords."""

    kind: str  # bool, int, float, vector, string, enum, pointer
    kwargs: dict[str, Any]


# -- reading the contract -----------------------------------------------------------------------------------------


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _owner_class(name: str, mode: str) -> tuple[type, str]:
    """(dataclass, field name) of a request field; ``controls.scale`` is ``ControlSpec.scale``."""
    prefix, _, rest = name.partition(".")
    return (NESTED[prefix], rest) if rest else (modes.get(mode).request, name)


def field_default(name: str, mode: str) -> Any:
    """The contract default of request field ``name`` in ``mode``."""
    cls, attr = _owner_class(name, mode)
    spec = next(f for f in dataclasses.fields(cls) if f.name == attr)
    return spec.default_factory() if spec.default is dataclasses.MISSING else spec.default


def field_type(name: str, mode: str) -> Any:
    cls, attr = _owner_class(name, mode)
    return _hints(cls)[attr]


def limit(name: str) -> validation.Limit | None:
    """The contract's bound of request field ``name`` (``controls.scale``: every ControlSpec's ``scale``)."""
    return validation.LIMITS.get(name)


def choices(name: str) -> tuple[str, ...]:
    """The contract's choice list of request field ``name``; () when it takes any value."""
    return validation.CHOICES.get(name, ())


def default(setting: Setting, mode: str) -> Any:
    """The default of ``setting`` in ``mode``: the contract's (scaled), the derived one, or the add-on's own."""
    if setting.derive is not None:
        return setting.derive(modes.get(mode))
    if not setting.fields:
        return setting.items[0][0] if setting.default is None and setting.items else setting.default
    values = [field_default(name, mode) * setting.scale if setting.scale != 1 else field_default(name, mode)
              for name in setting.fields_for(mode)]
    return tuple(values) if len(values) > 1 else values[0]


def is_per_mode(setting: Setting) -> bool:
    """True when the contract gives ``setting`` different defaults in the modes it applies to."""
    return len({repr(default(setting, mode)) for mode in setting.modes}) > 1


def kind(setting: Setting) -> str:
    if not setting.fields:
        return setting.kind
    if len(setting.fields) > 1:
        return "vector"
    tp = field_type(setting.fields[0], setting.modes[0])
    if tp is str:
        return "enum" if choices(setting.fields[0]) else "string"
    return {bool: "bool", int: "int", float: "float"}[tp]


def held_range(low: float, high: float, kind_: str) -> tuple[float, float]:
    """``low..high`` clamped to what a property of ``kind_`` can hold.

    The rule for bounds the property type cannot hold: the property holds the part of the contract's range that it
    can (an IntProperty stops at 2**31-1, the seed's contract range goes to 2**63-1). Values beyond it never reach
    a property silently: :func:`check_value` refuses them with a message (CLI, Load Parameters), and Redo sends a
    strip's stored request as it is, so a seed the panel cannot show still redoes exactly.
    """
    top = INT_MAX if kind_ == "int" else FLOAT_MAX
    bottom = INT_MIN if kind_ == "int" else -FLOAT_MAX
    low, high = max(low, bottom), min(high, top)
    return (int(low), int(high)) if kind_ == "int" else (float(low), float(high))


def _bounds(setting: Setting, kind_: str) -> dict[str, Any]:
    bound = limit(setting.fields[0]) if setting.fields else None
    if bound is None:
        return {}
    number = "int" if kind_ == "int" else "float"
    scale = setting.scale
    low, high = held_range(bound.min * scale, bound.max * scale, number)
    out = {"min": low, "max": high}
    for key, value in (("soft_min", bound.soft_min), ("soft_max", bound.soft_max)):
        if value is not None:
            out[key] = held_range(value * scale, value * scale, number)[0]
    return out


def enum_items(setting: Setting) -> tuple[tuple[str, str, str], ...]:
    if not setting.fields:
        return setting.items
    return tuple((value, *setting.labels.get(value, (value.title(), ""))) for value in choices(setting.fields[0]))


def prop_spec(setting: Setting, mode: str) -> PropSpec:
    """The property of ``setting`` as the contract defines it in ``mode``."""
    kind_ = kind(setting)
    kwargs: dict[str, Any] = {"name": setting.label, "description": setting.description}
    value = default(setting, mode)
    if kind_ == "enum":
        kwargs["items"] = enum_items(setting)
    if kind_ in ("int", "float", "vector"):
        kwargs.update(_bounds(setting, kind_))
    if kind_ == "vector":
        kwargs["size"] = len(setting.fields)
    if kind_ != "pointer":
        kwargs["default"] = value
    kwargs.update(setting.ui)
    return PropSpec(kind_, kwargs)


# -- values between settings and requests -------------------------------------------------------------------------


def plain_float(value: float) -> float:
    """The shortest decimal a float property stores as ``value``: 0.4, not 0.4000000059604645 (a C float's 0.4)."""
    stored = struct.unpack("f", struct.pack("f", value))[0]
    for digits in range(6, 10):
        shorter = float(f"{value:.{digits}g}")
        if struct.unpack("f", struct.pack("f", shorter))[0] == stored:
            return shorter
    return value


def to_request(setting: Setting, value: Any) -> tuple[Any, ...]:
    """The request value(s) of a setting's value, one per field (floats as the decimal the user typed)."""
    values = tuple(value) if len(setting.fields) > 1 else (value,)
    out = []
    for item in values:
        if isinstance(item, float):
            item = plain_float(item)
            if setting.scale != 1:
                item = float(f"{item / setting.scale:.12g}")
        out.append(item)
    return tuple(out)


def from_request(setting: Setting, values: tuple[Any, ...]) -> Any:
    """A setting's value from its field values (the inverse of :func:`to_request`)."""
    scaled = tuple(v * setting.scale if setting.scale != 1 else v for v in values)
    return scaled if len(scaled) > 1 else scaled[0]


def request_values(settings: Any, mode: str, table: tuple[Setting, ...]) -> dict[str, Any]:
    """Every top-level request field that the settings of ``table`` fill in ``mode``, read from ``settings``."""
    out: dict[str, Any] = {}
    for setting in table:
        names = setting.fields_for(mode)
        if mode not in setting.modes or not names or "." in names[0]:
            continue
        out.update(zip(names, to_request(setting, getattr(settings, setting.name)), strict=True))
    return out


def bounds(setting: Setting) -> tuple[Any, Any]:
    """(min, max) that the property of ``setting`` holds; (None, None) when it has none."""
    kwargs = prop_spec(setting, setting.modes[0]).kwargs
    return kwargs.get("min"), kwargs.get("max")


def check_value(setting: Setting, value: Any) -> None:
    """``T2VZAddonError`` when ``value`` lies outside what the property of ``setting`` holds (see held_range)."""
    spec = prop_spec(setting, setting.modes[0])
    low, high = bounds(setting)
    items = [item[0] for item in spec.kwargs.get("items", ())]
    if items and value not in items:
        raise T2VZAddonError(f"{setting.label} {value!r} is not one of {', '.join(items)}",
                             f"use one of {', '.join(items)}", setting=setting.name)
    numbers = value if isinstance(value, tuple) else (value,)
    if low is not None and any(not low <= v <= high for v in numbers):
        contract = limit(setting.fields[0])
        hint = f"use {low}-{high}"
        if contract is not None and (contract.max * setting.scale > high or contract.min * setting.scale < low):
            hint += (f" here ({'a C int' if spec.kind == 'int' else 'a C float'} is what a Blender property holds); "
                     "the backend CLI takes the contract's whole range, and Redo keeps a strip's stored value")
        raise T2VZAddonError(f"{setting.label} {value} is outside what the setting holds ({low}-{high})", hint,
                             setting=setting.name)


def per_mode_names(table: tuple[Setting, ...]) -> tuple[str, ...]:
    """The settings of ``table`` stored once per mode (see the module docstring)."""
    return tuple(setting.name for setting in table if is_per_mode(setting))
