"""The contract's bounds: one table (``validation.LIMITS``) covers every numeric request field and is enforced."""

from __future__ import annotations

import dataclasses
import math
import typing

import pytest

from t2vz_backend.protocol import (
    REQUEST_TYPES,
    ControlSpec,
    ControlVideoRequest,
    FarmSpec,
    LoraSpec,
    TextToVideoRequest,
)
from t2vz_backend.validation import LIMITS, validate_request

# Numeric fields whose rule is not a plain range (checked by their own code in validation.py).
RULED_ELSEWHERE = {"frame_start", "frame_end", "controls.start", "controls.end", "controls.low_threshold",
                   "controls.high_threshold"}
NESTED = {"controls": ControlSpec, "loras": LoraSpec, "farm": FarmSpec}


def numeric_fields() -> set[str]:
    names = set()
    for cls in REQUEST_TYPES.values():
        for spec in dataclasses.fields(cls):
            if typing.get_type_hints(cls)[spec.name] in (int, float):
                names.add(spec.name)
    for prefix, cls in NESTED.items():
        hints = typing.get_type_hints(cls)
        names |= {f"{prefix}.{spec.name}" for spec in dataclasses.fields(cls) if hints[spec.name] in (int, float)}
    return names


def test_every_numeric_field_has_one_limit_and_every_limit_a_field():
    fields = numeric_fields()
    assert fields - RULED_ELSEWHERE - set(LIMITS) == set()
    assert set(LIMITS) - fields == set()


@pytest.mark.parametrize("name", sorted(k for k, v in LIMITS.items() if "." not in k and not math.isinf(v.max)))
def test_a_value_above_the_maximum_is_refused_naming_the_field(name):
    limit = LIMITS[name]
    cls = next(c for c in REQUEST_TYPES.values() if name in {f.name for f in dataclasses.fields(c)})
    kind = typing.get_type_hints(cls)[name]
    too_big = kind(limit.max + 8 if kind is int else limit.max * 2 + 1)
    problems = validate_request(cls(output_dir="out", **{name: too_big}))
    assert name in {p.field for p in problems}, problems


def test_limits_name_the_range_in_the_hint():
    (problem,) = [p for p in validate_request(TextToVideoRequest(output_dir="o", prompt="p", chunk_size=0))
                  if p.field == "chunk_size"]
    assert "at least 1" in problem.hint


def test_nested_limits_apply_to_each_spec():
    request = ControlVideoRequest(output_dir="o", controls=(ControlSpec("canny", ".", start_frame=-1),))
    assert "controls[0].start_frame" in {p.field for p in validate_request(request)}
