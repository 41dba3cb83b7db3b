"""The add-on and the backend contract agree: every default, bound and choice list the add-on registers, per mode.

Expected values are read here straight from the contract (the request dataclasses in ``protocol``,
``validation.LIMITS`` and ``validation.CHOICES``, ``model_refs``), not through the add-on's derivation, and compared
with what Blender registered, so a literal written into the add-on, or a contract change the add-on does not follow,
fails here. The settings table says which field a setting fills; that it fills the right one is checked by
building requests from default settings (they must equal the contract's default requests).
"""

from __future__ import annotations

import dataclasses
import json
import math
import struct

import pytest
from addon_helpers import PACKAGE, addon, fake_client, prefs, scene, submodule  # noqa: F401  # fixtures

bpy = pytest.importorskip("bpy")

# Properties with no request field: the add-on owns them, and says why.
ADDON_OWNED = {
    "mode": "which of the add-on's modes (core/modes.py) the panel shows",
    "fit_source": "width = height = 0 in the request (derived: the source modes' contract default)",
    "use_frame_range": "timeline frames, turned into sources or frames by the add-on",
    "frame_range_start": "timeline frames",
    "frame_range_end": "timeline frames (derived: as long as the default text-to-video)",
    "control_kind": "which default ControlNet kind (choices: model_refs.DEFAULT_CONTROLNETS)",
    "control_input": "footage or maps: preprocessor = kind or 'none'",
    "pass_pose": "which scene passes to render", "pass_depth": "", "depth_source": "", "pass_canny": "",
    "mask_collection": "which objects to render as masks",
    "motion_source": "camera motion: what the add-on turns into motion_homographies / motion_flow",
    "motion_plane": "camera motion: the plane the homographies are made over", "motion_plane_object": "",
    "text2video": "per-mode group", "controlnet": "per-mode group", "pix2pix": "per-mode group",
    "scene": "per-mode group",
    "render_on_farm": "where the job runs (issue 15: the Ray cluster of the Farm preferences)",
}
PREFS_OWNED = {"backend_mode", "python_source", "python_path", "install_torch", "hf_home", "output_root",
               "unsaved_output_dir",
               "farm_address", "farm_ranges", "farm_token_file", "farm_shared_storage"}  # issue 15: FarmSpec's
# Request fields the add-on fills from elsewhere than a setting default (sources, the output folder, Blender).
FILLED_BY_THE_JOB = {"output_dir", "controls", "input", "input_start", "mask_dir", "offline", "model"}


def contract():
    return submodule("backend.t2vz_backend.protocol"), submodule("backend.t2vz_backend.validation")


def field_default(mode, name):
    protocol, _ = contract()
    prefix, _, rest = name.partition(".")
    cls = {"controls": protocol.ControlSpec, "loras": protocol.LoraSpec}[prefix] if rest else mode.request
    spec = {f.name: f for f in dataclasses.fields(cls)}[rest or name]
    return spec.default_factory() if spec.default is dataclasses.MISSING else spec.default


def c_float(value):
    return struct.unpack("f", struct.pack("f", value))[0]


def rna(struct_type, name):
    return struct_type.bl_rna.properties[name]


def held(value, is_int):
    top = 2**31 - 1 if is_int else 3.4028234663852886e38
    return max(-top - (1 if is_int else 0), min(top, value))


def check_numeric(prop, limit, scale, setting_name):
    is_int = prop.type == "INT"
    lo, hi = held(limit.min * scale, is_int), held(limit.max * scale, is_int)
    assert (prop.hard_min, prop.hard_max) == pytest.approx((c_float(lo), c_float(hi)), rel=1e-6), setting_name
    if limit.soft_max is not None:
        assert prop.soft_max == pytest.approx(c_float(limit.soft_max * scale), rel=1e-6), setting_name
    if limit.soft_min is not None:
        assert prop.soft_min == pytest.approx(c_float(limit.soft_min * scale), rel=1e-6), setting_name


def check_setting(owner_type, setting, mode):
    """One setting's registered property against the contract, in ``mode``."""
    _, validation = contract()
    prop = rna(owner_type, setting.name)
    assert not set(setting.ui) & {"default", "min", "max", "soft_min", "soft_max", "items"}, setting.name
    if setting.derive is not None:
        expected = setting.derive(mode)
    else:
        values = [field_default(mode, f) for f in setting.fields_for(mode.key)]
        expected = tuple(v * setting.scale for v in values) if len(values) > 1 else values[0] * setting.scale \
            if isinstance(values[0], float) else values[0]
    default = tuple(prop.default_array) if getattr(prop, "is_array", False) else prop.default
    if isinstance(expected, tuple):
        assert default == pytest.approx(tuple(c_float(v) for v in expected)), setting.name
    elif isinstance(expected, float):
        assert default == pytest.approx(c_float(expected)), setting.name
    else:
        assert default == expected, (setting.name, mode.key)
    field = setting.fields[0] if setting.fields else ""
    if field in validation.LIMITS:
        check_numeric(prop, validation.LIMITS[field], setting.scale, setting.name)
    elif prop.type in ("INT", "FLOAT") and setting.fields:
        pytest.fail(f"{setting.name} fills {field}, which has no validation.LIMITS entry")
    choices = validation.CHOICES.get(field)
    if choices is not None:
        assert [item.identifier for item in prop.enum_items] == list(choices), setting.name


def test_every_scene_setting_default_bound_and_choice_is_the_contracts_in_every_mode(addon):  # noqa: F811
    table, modes = submodule("core.settings_table"), submodule("core.modes")
    main = bpy.types.Scene.bl_rna.properties["t2vz"].fixed_type
    registered = set(main.bl_rna.properties.keys()) - {"rna_type", "name"}
    in_table = {s.name for s in table.SCENE_SETTINGS}
    for name in registered - in_table:
        assert name in ADDON_OWNED, f"Scene.t2vz.{name} is in no settings table row and not declared add-on-owned"
    for setting in table.SCENE_SETTINGS:
        assert bool(setting.fields) or setting.derive or setting.name in ADDON_OWNED, setting.name
        for key in setting.modes:
            mode = modes.get(key)
            if setting.name in table.PER_MODE:
                group = rna(main, mode.group).fixed_type
                check_setting(group, setting, mode)
            else:
                assert setting.name in registered, setting.name
                if setting.fields or setting.derive:
                    check_setting(main, setting, mode)


def test_steps_and_guidance_are_per_mode_and_follow_the_mode_without_clobbering(addon):  # noqa: F811
    protocol, _ = contract()
    table = submodule("core.settings_table")
    assert {"steps", "guidance"} <= set(table.PER_MODE) and "prompt" not in table.PER_MODE
    settings = bpy.data.scenes.new("fresh").t2vz
    expected = {"TEXT2VIDEO": protocol.TextToVideoRequest, "CONTROLNET": protocol.ControlVideoRequest,
                "PIX2PIX": protocol.EditVideoRequest, "SCENE": protocol.ControlVideoRequest}
    for key, cls in expected.items():
        settings.mode = key
        assert (settings.steps, settings.guidance) == (cls().steps, pytest.approx(cls().guidance)), key
    settings.mode, settings.steps = "TEXT2VIDEO", 31
    settings.mode = "CONTROLNET"
    assert settings.steps == protocol.ControlVideoRequest().steps
    settings.steps = 12
    settings.mode = "TEXT2VIDEO"
    assert settings.steps == 31 and settings.text2video.steps == 31 and settings.controlnet.steps == 12
    assert table.owner(settings, "steps") == settings.text2video and table.owner(settings, "seed") == settings


def test_preferences_defaults_and_choices_are_the_contracts(addon):  # noqa: F811
    protocol, validation = contract()
    model_refs = submodule("backend.t2vz_backend.model_refs")
    table, modes = submodule("core.settings_table"), submodule("core.modes")
    p_type = type(prefs())
    registered = set(p_type.bl_rna.properties.keys()) - {"rna_type", "bl_idname"}
    assert registered == {s.name for s in table.PREFERENCE_SETTINGS} | PREFS_OWNED
    for setting in table.PREFERENCE_SETTINGS:
        for key in setting.modes:
            check_setting(p_type, setting, modes.get(key))
    assert rna(p_type, "base_model").default == model_refs.DEFAULT_BASE_MODEL
    assert rna(p_type, "pix2pix_model").default == model_refs.DEFAULT_PIX2PIX_MODEL
    assert {f"controlnet_{kind}" for kind in model_refs.DEFAULT_CONTROLNETS} <= registered
    assert [i.identifier for i in rna(p_type, "device").enum_items] == list(validation.DEVICES)
    assert rna(p_type, "allow_pickle").default is protocol.JobRequest.allow_pickle


@pytest.mark.parametrize("mode", ["TEXT2VIDEO", "CONTROLNET", "PIX2PIX", "SCENE"])
def test_default_settings_send_the_contracts_default_request(addon, mode):  # noqa: F811
    """Every field the settings fill arrives at its contract default (floats as typed, not as C floats)."""
    request_builder, preferences = submodule("core.request_builder"), submodule("preferences")
    settings = bpy.data.scenes.new("fresh").t2vz
    settings.mode = mode
    default_prefs = type(prefs())  # the registered defaults, read from RNA
    view = request_builder.PrefsView(**{
        name: rna(default_prefs, name).default for name in ("base_model", "pix2pix_model", "model_config",
                                                            "device", "dtype", "vae_batch", "allow_pickle")})
    assert view == dataclasses.replace(request_builder.PrefsView(), offline=view.offline)
    source = request_builder.SourceInput("/in", frames=8) if mode in ("CONTROLNET", "PIX2PIX") else None
    request = request_builder.build_request(settings, view, "/out", source=source)
    reference = type(request)()
    for spec in dataclasses.fields(request):
        if spec.name in FILLED_BY_THE_JOB or (spec.name == "frames" and mode != "TEXT2VIDEO"):
            continue
        assert getattr(request, spec.name) == getattr(reference, spec.name), spec.name
    for control in getattr(request, "controls", ()):
        assert control.scale == submodule("backend.t2vz_backend.protocol").ControlSpec.scale
    assert preferences.prefs_view(prefs()).allow_pickle is prefs().allow_pickle


def test_seed_range_is_what_an_int_property_holds_and_beyond_it_is_refused(scene):  # noqa: F811
    _, validation = contract()
    contract_mod, table = submodule("core.contract"), submodule("core.settings_table")
    seed = rna(type(scene.t2vz), "seed")
    assert (seed.hard_min, seed.hard_max) == (validation.LIMITS["seed"].min, min(validation.LIMITS["seed"].max,
                                                                                  2**31 - 1))
    with pytest.raises(submodule("core.errors").T2VZAddonError, match="outside what the setting holds") as info:
        contract_mod.check_value(table.SCENE_BY_NAME["seed"], 2**40)
    assert "Redo keeps" in info.value.hint and info.value.setting == "seed"
    assert submodule("cli").execute(["generate", "--seed", str(2**40)]) == 2
    assert scene.t2vz.seed == 7  # unchanged


def test_load_parameters_keeps_what_the_panel_cannot_hold(scene, fake_client):  # noqa: F811
    bpy.ops.t2vz.generate()
    (strip,) = [s for s in submodule("core.compat").iter_all_strips(scene) if "t2vz_request" in s]
    data = json.loads(strip["t2vz_request"])
    data.update(seed=2**40, steps=33)
    strip["t2vz_request"] = json.dumps(data)
    scene.sequence_editor.active_strip = strip
    skipped = submodule("operators.settings").apply_request(scene.t2vz, data)
    assert len(skipped) == 1 and "Seed" in skipped[0]
    assert (scene.t2vz.seed, scene.t2vz.steps) == (7, 33)


def test_cli_offers_every_setting_typed_like_it(addon, capsys):  # noqa: F811
    cli, table = submodule("cli"), submodule("core.settings_table")
    assert cli.execute(["generate", "--help"]) == 0
    text = capsys.readouterr().out
    for setting in table.SCENE_SETTINGS:
        if setting.cli and setting.kind != "pointer":
            assert f"--{setting.name.replace('_', '-')}" in text, setting.name
    assert "{ddim," in text.replace(" ", "")  # choices from validation.CHOICES


def test_register_builds_nothing_from_literals(addon):  # noqa: F811
    """No numeric default, bound or choice list is written into the property modules themselves."""
    import ast
    from pathlib import Path

    for name in ("properties.py", "preferences.py"):
        tree = ast.parse((Path(addon.__file__).parent / name).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.keyword) and node.arg in ("min", "max", "soft_min", "soft_max"):
                pytest.fail(f"{name}: literal {node.arg}= (take it from validation.LIMITS)")
            if isinstance(node, ast.keyword) and node.arg == "default":
                assert not (isinstance(node.value, ast.Constant) and isinstance(node.value.value, (int, float))
                            and not isinstance(node.value.value, bool)), f"{name}: a numeric default literal"
    assert math.isfinite(rna(type(prefs()), "vae_batch").hard_max)
