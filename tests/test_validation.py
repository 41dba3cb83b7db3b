"""The contract's bounds: one table (``validation.LIMITS``) covers every numeric request field and is enforced."""

from __future__ import annotations

import dataclasses
import math
import typing
from pathlib import Path

import pytest

from t2vz_backend.protocol import (
    REQUEST_TYPES,
    ControlSpec,
    ControlVideoRequest,
    EditVideoRequest,
    FarmSpec,
    LoraSpec,
    TextToVideoRequest,
)
from t2vz_backend.validation import LIMITS, validate_request

# Numeric fields whose rule is not a plain range (checked by their own code in validation.py).
RULED_ELSEWHERE = {"frame_start", "frame_end", "controls.start", "controls.end"}
LENGTHS = {"controls", "loras"}  # list fields whose length LIMITS bounds
NESTED = {"controls": ControlSpec, "loras": LoraSpec, "farm": FarmSpec}
ROOT = Path(__file__).resolve().parents[1]


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
    assert set(LIMITS) - fields == LENGTHS


@pytest.mark.parametrize("name", sorted(k for k, v in LIMITS.items() if "." not in k and k not in LENGTHS))
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
    assert "between 1 and 64" in problem.hint


def test_every_limit_has_a_finite_maximum_and_states_it():
    assert [name for name, limit in LIMITS.items() if math.isinf(limit.max)] == []
    (problem,) = [p for p in validate_request(TextToVideoRequest(output_dir="o", prompt="p", frames=10**6))
                  if p.field == "frames"]
    assert "above the maximum 10000" in problem.message and "in memory" in problem.message


class NoModels:
    """A model cache that fails the test if anything is loaded."""

    def base(self, *args, **kwargs):
        raise AssertionError("a model was loaded for a request that validation should have refused")

    controlnet = base


def _too_big(cls, name):
    limit = LIMITS[name]
    kind = typing.get_type_hints(cls)[name]
    return kind(limit.max + 8 if kind is int else limit.max * 2 + 1)


BIG_NESTED = [
    ("controls[0].scale", {"controls": (ControlSpec("canny", str(ROOT), scale=1e6),)}),
    ("controls[0].fps", {"controls": (ControlSpec("canny", str(ROOT), fps=1e9),)}),
    ("controls[0].start_frame", {"controls": (ControlSpec("canny", str(ROOT), start_frame=2**40),)}),
    ("controls[0].high_threshold", {"controls": (ControlSpec("canny", str(ROOT), high_threshold=10**9),)}),
    ("controls[0].preprocessor", {"controls": (ControlSpec("canny", str(ROOT), preprocessor="magic"),)}),
    ("controls", {"controls": tuple(ControlSpec("canny", str(ROOT)) for _ in range(9))}),
    ("frame_start", {"frame_start": 10**7}),
]


@pytest.mark.parametrize(("name", "changes"), [
    *[(name, None) for name, v in sorted(LIMITS.items()) if "." not in name and name not in LENGTHS], *BIG_NESTED])
def test_values_above_their_bound_are_refused_before_any_model_loads(tmp_path, name, changes):
    from t2vz_backend.errors import InvalidRequestError
    from t2vz_backend.service.jobs import run_job

    if changes is None:
        cls = next(c for c in REQUEST_TYPES.values() if name in {f.name for f in dataclasses.fields(c)})
        changes = {name: _too_big(cls, name)}
    else:
        cls = ControlVideoRequest
    valid = {TextToVideoRequest: {"prompt": "p"}, EditVideoRequest: {"instruction": "snow", "input": str(ROOT)},
             ControlVideoRequest: {"controls": (ControlSpec("canny", str(ROOT)),)}}[cls]
    request = cls(output_dir=str(tmp_path / "out"), **{**valid, **changes})
    assert [p.field for p in validate_request(request)] == [name]
    with pytest.raises(InvalidRequestError) as info:
        run_job(request, cache=NoModels(), emit=lambda event: None)
    assert info.value.field == name
    assert not (tmp_path / "out").exists()


def test_nested_limits_apply_to_each_spec():
    request = ControlVideoRequest(output_dir="o", controls=(ControlSpec("canny", ".", start_frame=-1),))
    assert "controls[0].start_frame" in {p.field for p in validate_request(request)}


def test_what_the_media_make_impossible_is_refused_before_any_model_loads(tmp_path, monkeypatch):
    from PIL import Image

    from t2vz_backend.errors import DependencyError, InputError
    from t2vz_backend.service import preflight
    from t2vz_backend.service.jobs import run_job

    source = tmp_path / "src"
    source.mkdir()
    for i in range(3):
        Image.new("RGB", (48, 32)).save(source / f"{i:04d}.png")

    def refused(error, **changes):
        values = {"instruction": "snow", "input": str(source), **changes}
        request = EditVideoRequest(output_dir=str(tmp_path / "out"), **values)
        with pytest.raises(error) as info:
            run_job(request, cache=NoModels(), emit=lambda event: None)
        assert not (tmp_path / "out").exists()
        return info.value

    monkeypatch.setattr(preflight, "MAX_FRAMES", 2)
    error = refused(InputError)
    assert error.field == "input" and "3 frames, more than the 2" in error.message and "frames" in error.hint
    monkeypatch.setattr(preflight, "MAX_FRAMES", 10)
    monkeypatch.setattr(preflight, "MAX_SIZE", 40)
    error = refused(InputError, long_side=0)
    assert error.field == "long_side" and "48x32" in error.message and "long_side" in error.hint
    request = ControlVideoRequest(output_dir=str(tmp_path / "out"), controls=(
        ControlSpec("canny", str(source), preprocessor="midas"),))
    with pytest.raises(DependencyError) as info:
        run_job(request, cache=NoModels(), emit=lambda event: None)
    assert info.value.field == "controls[0].preprocessor" and "annotators" in info.value.hint


def test_a_broken_frame_rate_cannot_make_a_huge_timeline():
    from t2vz_backend.errors import InputError
    from t2vz_backend.media.reader import resample_indices

    assert resample_indices(4, 24.0, 12.0) == [0, 2]
    with pytest.raises(InputError, match="would make"):
        resample_indices(1000, 1e-6, 120.0)
