"""Add-on preferences: the backend environment, models, device and precision, network, output folder.

The preferences that fill a request (models, device, precision, VAE batch, offline, pickle) are built from
``core/settings_table.PREFERENCE_SETTINGS``, so their defaults and choices are the backend contract's; the rest
(where the backend runs, the output folder) belong to the add-on. No ``from __future__ import annotations`` here:
Blender reads the ``bpy.props`` annotations as objects.
"""

import os

import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty, StringProperty

from .backend.t2vz_backend import model_refs, protocol, validation
from .core import compat, environment, installer, request_builder, session, settings_table
from .core.errors import T2VZAddonError
from .properties import annotations

DEFAULT_OUTPUT_ROOT = "//t2vz/"  # beside the .blend file


def _draw(self, context):
    from .ui.preferences import draw_preferences

    draw_preferences(self, context, self.layout)


def _farm_properties() -> dict:
    """The Farm preferences (issue 15): where Render on Farm sends jobs. They fill a ``protocol.FarmSpec``, not a
    request, so they are not rows of the settings table; their defaults and bounds are FarmSpec's and LIMITS'."""
    spec, ranges = protocol.FarmSpec(), validation.LIMITS["farm.ranges"]
    bounds = {"min": int(ranges.min), "max": int(ranges.max), "soft_max": int(ranges.soft_max)}
    return {
        "farm_address": StringProperty(name="Ray Address", description="The Ray cluster: 'auto' (the cluster this "
                                       "machine belongs to), HOST:PORT of its head node, or empty for a private "
                                       "local Ray instance on this machine", default=spec.address),
        "farm_ranges": IntProperty(name="Ranges", description="Split the job into this many contiguous frame "
                                   "ranges; 0: one per GPU of the cluster", default=spec.ranges, **bounds),
        "farm_token_file": StringProperty(name="Token File", description="The cluster's Ray authentication token "
                                          "file (empty: RAY_AUTH_TOKEN_PATH, else ~/.ray/auth_token)",
                                          subtype="FILE_PATH", default=spec.token_file),
        "farm_shared_storage": BoolProperty(name="Shared Storage", description="The output folder is at the same "
                                            "path on every machine of the cluster: workers write frames there "
                                            "directly instead of sending them back", default=spec.shared_storage),
    }


T2VZ_AP_preferences = type("T2VZ_AP_preferences", (bpy.types.AddonPreferences,), {
    "bl_idname": __package__,
    "draw": _draw,
    "__annotations__": {
        "backend_mode": EnumProperty(
            name="Backend", description="Where the diffusion models run", default=session.SUBPROCESS,
            items=((session.SUBPROCESS, "Separate Process", "A worker process with its own Python environment "
                    "(recommended)"),
                   (session.IN_PROCESS, "Inside Blender", "A thread of Blender's own Python, which then needs "
                    "torch"))),
        "python_source": EnumProperty(
            name="Python", description="Which Python environment runs the worker", default="AUTO",
            items=(("AUTO", "Installed Environment", "The environment made by Install Dependencies "
                    "(install_deps.py)"),
                   ("CUSTOM", "Custom Interpreter", "A Python interpreter of your choice that has torch and "
                    "diffusers"))),
        "python_path": StringProperty(name="Interpreter", description="Python interpreter of the backend "
                                      "environment", subtype="FILE_PATH", default=""),
        "install_torch": EnumProperty(
            name="Torch Build", description="Which torch build Install Dependencies installs", default="auto",
            items=(("auto", "Auto", "Detect the GPU"), ("cuda", "CUDA", "NVIDIA"), ("rocm", "ROCm", "AMD on Linux"),
                   ("mps", "MPS", "Apple Silicon"), ("cpu", "CPU", "No GPU"))),
        **annotations(settings_table.PREFERENCE_SETTINGS),
        "few_step_lora": StringProperty(
            name="Few-Step LoRA", description="The TCD or LCM LoRA that jobs with the scene's Few-Step LoRA on "
            "apply (the Draft preset): a hub id, a folder or a .safetensors file. The TCD LoRA goes with the TCD "
            "sampler; for LCM's (latent-consistency/lcm-lora-sdv1-5) choose LCM or TCD",
            default=model_refs.DEFAULT_FEW_STEP_LORA),
        "hf_home": StringProperty(name="Model Cache", description="Hugging Face cache folder (HF_HOME); empty: "
                                  "the standard one", subtype="DIR_PATH", default=""),
        # No DIR_PATH subtype: preference paths do not accept Blender's "//" (relative to the .blend file) prefix.
        "output_root": StringProperty(name="Output Folder", description="Where job folders go; a path starting "
                                      "with // is relative to the .blend file", default=DEFAULT_OUTPUT_ROOT),
        "unsaved_output_dir": StringProperty(name="Unsaved Files", description="Output folder while the .blend "
                                             "file is not saved yet; empty: a t2vz folder in Blender's user data",
                                             subtype="DIR_PATH", default=""),
        **_farm_properties(),
    },
})


def get_prefs(context=None):
    """The add-on preferences; ``T2VZAddonError`` when the add-on is registered without being enabled."""
    addons = (context or bpy.context).preferences.addons
    addon = addons.get(__package__)
    if addon is None:
        raise T2VZAddonError(f"the add-on {__package__!r} is not enabled", "enable it in Preferences > Add-ons")
    return addon.preferences


def effective_offline(prefs) -> bool:
    """Offline when the preference says so or Blender's online access is off."""
    return prefs.offline or not compat.online_access(bpy.app)


def _model(value: str) -> str:
    value = value.strip()
    return bpy.path.abspath(value) if value.startswith("//") else os.path.expanduser(value)


def prefs_view(prefs) -> request_builder.PrefsView:
    return request_builder.PrefsView(
        base_model=_model(prefs.base_model), pix2pix_model=_model(prefs.pix2pix_model),
        model_config=_model(prefs.model_config) if prefs.model_config.strip() else "",
        controlnet_models={kind: _model(getattr(prefs, f"controlnet_{kind}"))
                           for kind in settings_table.CONTROL_KINDS},
        device=prefs.device, dtype=prefs.dtype, vae_batch=prefs.vae_batch, offline=effective_offline(prefs),
        allow_pickle=prefs.allow_pickle, compile=prefs.compile, channels_last=prefs.channels_last,
        few_step_lora=_model(prefs.few_step_lora) if prefs.few_step_lora.strip() else "",
        report_clip=_model(prefs.report_clip) if prefs.report_clip.strip() else "",
    )


def client_config(prefs) -> session.ClientConfig:
    """How to reach the backend; raises ``T2VZAddonError`` with install instructions when there is none."""
    extra = {}
    if prefs.hf_home:
        extra["HF_HOME"] = bpy.path.abspath(prefs.hf_home)
    if effective_offline(prefs):
        extra.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    if prefs.backend_mode == session.IN_PROCESS:
        return session.ClientConfig(mode=session.IN_PROCESS, extra_env=tuple(sorted(extra.items())))
    choice = environment.EnvChoice(prefs.python_source, bpy.path.abspath(prefs.python_path))
    backend = environment.resolve_backend(choice)
    return session.ClientConfig(session.SUBPROCESS, backend, tuple(sorted(extra.items())))


def farm_spec(prefs, **changes):
    """The Farm preferences as the contract's ``FarmSpec`` (``changes`` that are not None override them)."""
    import dataclasses

    token = bpy.path.abspath(prefs.farm_token_file) if prefs.farm_token_file.strip() else ""
    spec = protocol.FarmSpec(address=prefs.farm_address.strip(), ranges=prefs.farm_ranges, token_file=token,
                             shared_storage=prefs.farm_shared_storage)
    return dataclasses.replace(spec, **{k: v for k, v in changes.items() if v is not None})


def user_output_dir() -> str:
    """A per-user folder for jobs of unsaved files (never a temp folder: strips must find their frames later)."""
    try:
        return bpy.utils.extension_path_user(__package__, path="output", create=True)
    except ValueError:  # not installed as an extension (development checkout, tests)
        return bpy.utils.user_resource("DATAFILES", path=os.path.join("t2vz", "output"), create=True)


def output_root(prefs, override: str = "") -> str:
    """The absolute folder that job folders go in."""
    root = (override or prefs.output_root or DEFAULT_OUTPUT_ROOT).strip()
    if root.startswith("//"):
        if not bpy.data.filepath:
            root = bpy.path.abspath(prefs.unsaved_output_dir) if prefs.unsaved_output_dir else user_output_dir()
        else:
            root = bpy.path.abspath(root)
    return os.path.abspath(os.path.expanduser(root))


classes = (T2VZ_AP_preferences,)


def register() -> None:
    for cls in classes:
        bpy.utils.register_class(cls)


def unregister() -> None:
    installer.stop()
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
