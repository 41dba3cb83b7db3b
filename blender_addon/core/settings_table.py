"""Every add-on setting, once: the scene settings (``Scene.t2vz``) and the preferences that fill a request.

This is the one map between request fields and settings: ``properties.py`` and ``preferences.py`` build their
properties from it, the request builder fills requests from it, Load Parameters reads requests back through it, the
panel keys validation problems by it and ``blender -c t2vz generate`` makes its options from it. Defaults, bounds
and choices are the contract's (see ``contract.py``); only labels and tooltips are written here, plus the defaults
of add-on-owned settings (no request field), which say so.

To add a setting for a new request field: add a row with ``fields=("the_field",)`` and the modes it applies to;
give the field a ``validation.LIMITS`` entry if it is numeric (or a ``validation.CHOICES`` list if it is a choice).
Nothing else is needed for it to appear with the right default, bounds and choices, per mode where the contract's
defaults differ, and to reach the request; draw it in ``ui/panels.py``.
"""

from __future__ import annotations

from typing import Any

from ..backend.t2vz_backend import model_refs
from . import contract, modes, motion_choices
from .contract import Setting
from .modes import CONTROLNET, PIX2PIX, SCENE, SOURCE_MODES, TEXT2VIDEO

CONTROL_MODES = (CONTROLNET, SCENE)
CAMERA_MODES = (TEXT2VIDEO, SCENE)  # the modes whose frames the scene camera can move
SIZED_MODES = (*SOURCE_MODES, SCENE)  # modes that size their frames from a source (or the scene passes)
CONTROL_KINDS = tuple(model_refs.DEFAULT_CONTROLNETS)  # the kinds the backend has a default ControlNet for
_KIND_LABELS = {"canny": ("Edges", "Canny edges (ControlNet canny)"), "depth": ("Depth", "Depth maps (ControlNet "
                "depth)"), "pose": ("Pose", "OpenPose skeletons (ControlNet openpose)")}
FRAME_RANGE_START = 1  # add-on-owned: a new scene's first frame


def _auto_size(mode: modes.Mode) -> bool:
    """Fit Source is on where the mode's request sizes itself from the input (width = height = 0)."""
    request = mode.request()
    return request.width == 0 and request.height == 0


SCENE_SETTINGS: tuple[Setting, ...] = (
    Setting("prompt", "Prompt", "What the video shows (the edit instruction in Edit mode)", ("prompt",),
            by_mode={PIX2PIX: "instruction"}),
    Setting("negative_prompt", "Negative Prompt", "What the video should not show", ("negative_prompt",)),
    Setting("seed", "Seed", "Random seed: the same seed and settings make the same video", ("seed",)),
    Setting("steps", "Steps", "Denoising steps (more: slower, finer; the paper makes text-to-video with 50)",
            ("steps",)),
    Setting("guidance", "Guidance", "How strongly the prompt is followed (classifier-free guidance scale)",
            ("guidance",), ui={"precision": 1}),
    Setting("image_guidance", "Image Guidance", "Edit mode: how closely the source frames are kept",
            ("image_guidance",), (PIX2PIX,), ui={"precision": 2}),
    Setting("scheduler", "Sampler", "The diffusion sampler (scheduler)", ("scheduler",),
            labels={"ddim": ("DDIM", "The method's own sampler"), "ddpm": ("DDPM", ""), "pndm": ("PNDM", ""),
                    "dpm++": ("DPM++ 2M", ""), "dpm++sde": ("DPM++ SDE", ""), "unipc": ("UniPC", ""),
                    "euler": ("Euler", ""), "euler_a": ("Euler Ancestral", ""), "lms": ("LMS", ""),
                    "tcd": ("TCD", "For TCD-distilled models"), "lcm": ("LCM", "For LCM-distilled models")}),
    Setting("width", "Width", "Frame width in pixels (a multiple of 8)", ("width",), (TEXT2VIDEO,),
            ui={"step": 8, "subtype": "PIXEL"}),
    Setting("height", "Height", "Frame height in pixels (a multiple of 8)", ("height",), (TEXT2VIDEO,),
            ui={"step": 8, "subtype": "PIXEL"}),
    Setting("fit_source", "Fit Source", "Keep the source's aspect ratio, its long side scaled to Long Side (off: "
            "force Width x Height)", modes=SIZED_MODES, derive=_auto_size, kind="bool"),
    Setting("long_side", "Long Side", "The long side of the frames when fitting the source, in pixels (a multiple "
            "of 8)", ("long_side",), SIZED_MODES, ui={"step": 8, "subtype": "PIXEL"}),
    Setting("frames", "Frames", "Number of frames of a text-to-video job", ("frames",), (TEXT2VIDEO,)),
    Setting("use_frame_range", "Frame Range", "Limit the job to a range of timeline frames (off: the whole "
            "selection, or the scene range for scene passes)", kind="bool", default=False, cli=False),
    Setting("frame_range_start", "Start", "First timeline frame of the job", kind="int", default=FRAME_RANGE_START,
            cli=False),
    Setting("frame_range_end", "End", "Last timeline frame of the job (inclusive); starts as long as the default "
            "text-to-video", modes=(TEXT2VIDEO,), kind="int", cli=False,
            derive=lambda mode: FRAME_RANGE_START + mode.request().frames - 1),
    Setting("motion", "Motion", "Camera drift per frame, in percent of the frame size (x, y)",
            ("motion_x", "motion_y"), (TEXT2VIDEO,), scale=100.0, ui={"precision": 2, "subtype": "XYZ"}),
    Setting("t0", "t0", "Noise level (training timestep) where the first frame's latent is warped: T' in the paper",
            ("t0",), (TEXT2VIDEO,)),
    Setting("t1", "t1", "Noise level (training timestep) from which all frames are denoised: T in the paper; must "
            "be above t0", ("t1",), (TEXT2VIDEO,)),
    Setting("chunk_size", "Chunk Size", "Frames denoised together: lower needs less memory and never changes the "
            "result", ("chunk_size",)),
    Setting("exact_anchor", "Exact First Frame", "Give the first frame a denoising pass of its own each step, so "
            "it is bit-identical to a still with the same seed. Off: one pass fewer per step (faster), the first "
            "frame equal up to rounding", ("exact_anchor",)),
    Setting("control_kind", "Control", "What the ControlNet follows (the kinds the backend has a default "
            "ControlNet for)", modes=(CONTROLNET,), kind="enum",
            items=tuple((kind, *_KIND_LABELS.get(kind, (kind.title(), ""))) for kind in CONTROL_KINDS)),
    Setting("control_input", "Source", "Whether the strips are footage or control maps", modes=(CONTROLNET,),
            kind="enum", items=(
                ("EXTRACT", "Extract From Frames", "The strips are ordinary footage: the backend extracts the "
                 "control maps"),
                ("MAPS", "Strips Are Control Maps", "The strips already are edge, depth or pose maps (the "
                 "contract's preprocessor 'none')"))),
    Setting("control_scale", "Control Strength", "ControlNet conditioning scale", ("controls.scale",),
            CONTROL_MODES, ui={"precision": 2}),
    # Scene passes (Properties editor, Scene tab): add-on-owned, they decide which control maps are rendered.
    Setting("pass_pose", "Pose From Armatures", "OpenPose skeletons from the scene's armatures, seen by the active "
            "camera", modes=(SCENE,), kind="bool", default=True),
    Setting("pass_depth", "Depth From Z/Mist", "Depth rendered from the scene, normalised over the whole shot",
            modes=(SCENE,), kind="bool", default=False),
    Setting("depth_source", "Depth Source", "Which render pass gives the depth", modes=(SCENE,), kind="enum",
            items=(("auto", "Auto", "Mist when the view layer has the Mist pass on and the scene has a World, else Z"),
                   ("z", "Z", "Camera distance, normalised over the whole shot"),
                   ("mist", "Mist", "The Mist pass, normalised by the World's mist start and depth"))),
    Setting("pass_canny", "Edges From Renders", "Canny edges of the scene's renders", modes=(SCENE,), kind="bool",
            default=False),
    Setting("smooth_bg", "Smooth Background", "Text → Video: keep the background of the masked objects steady "
            "(needs a mask collection)", ("smooth_bg",), (TEXT2VIDEO,)),
    Setting("smooth_bg_strength", "Background Strength", "Weight each frame keeps of its own background",
            ("smooth_bg_strength",), (TEXT2VIDEO,), ui={"subtype": "FACTOR"}),
    Setting("mask_collection", "Mask Objects", "Objects whose masks mark the foreground for background smoothing",
            modes=(TEXT2VIDEO,), kind="pointer", ui={"type": "Collection"}, cli=False),
    Setting("report", "Consistency Report", "Also measure how steady the result is (warp error, PSNR/SSIM, CLIP "
            "metrics) and show it in the strip's Consistency panel; scene-pass jobs render the Vector pass for "
            "exact motion", ("report",)),
    # Farms (issue 15): add-on-owned; the job goes to the Ray cluster of the Farm preferences (generate --farm).
    Setting("render_on_farm", "Render on Farm", "Send the job to the Ray cluster set in the add-on preferences "
            "(Farm): its frame ranges render on every GPU at once, with the same frames as here", kind="bool",
            default=False, cli=False),
    # Camera motion (docs/camera_motion.md): add-on-owned choices; the request carries their result (homographies
    # or displacement fields), not the choice.
    Setting("motion_source", "Motion", "What moves the generated world from frame to frame", modes=CAMERA_MODES,
            kind="enum", items=motion_choices.MOTION_SOURCES),
    Setting("motion_plane", "Motion Plane", "Scene Camera: the surface the picture lies on", modes=CAMERA_MODES,
            kind="enum", items=motion_choices.MOTION_PLANES),
    Setting("motion_plane_object", "Motion Plane Object", "An empty or a plane mesh whose local XY plane carries "
            "the picture (Motion Plane: Plane Object)", modes=CAMERA_MODES, kind="pointer",
            ui={"type": "Object", "poll": motion_choices.is_plane_object}, cli=False),
)

_MODEL_HELP = "A Hugging Face hub id, a diffusers folder or a single checkpoint file"
PREFERENCE_SETTINGS: tuple[Setting, ...] = (
    Setting("base_model", "Base Model", f"Stable Diffusion 1.x model. {_MODEL_HELP}", ("model",),
            (TEXT2VIDEO, CONTROLNET, SCENE), derive=lambda mode: model_refs.DEFAULT_BASE_MODEL),
    Setting("model_config", "Checkpoint Configs", "Only for a single-file base model: a local diffusers SD 1.5 "
            "folder whose configs and tokenizer to use (needed offline unless they are in the model cache)",
            ("model_config",), (TEXT2VIDEO, CONTROLNET, SCENE), ui={"subtype": "DIR_PATH"}),
    *(Setting(f"controlnet_{kind}", f"ControlNet {_KIND_LABELS.get(kind, (kind.title(),))[0]}",
              f"The {kind} ControlNet; empty: {model_refs.DEFAULT_CONTROLNETS[kind]}. {_MODEL_HELP}",
              ("controls.model",), CONTROL_MODES) for kind in CONTROL_KINDS),
    Setting("pix2pix_model", "Pix2Pix Model", f"Instruct-Pix2Pix model for Edit mode. {_MODEL_HELP}", ("model",),
            (PIX2PIX,), derive=lambda mode: model_refs.DEFAULT_PIX2PIX_MODEL),
    Setting("device", "Device", "Where the models run", ("device",),
            labels={"auto": ("Auto", "CUDA, then Apple MPS, then the CPU"), "cuda": ("CUDA", "NVIDIA (or ROCm) GPU"),
                    "mps": ("Apple MPS", "Apple Silicon GPU"), "cpu": ("CPU", "Slow, but works everywhere")}),
    Setting("dtype", "Precision", "Number format of the model weights", ("dtype",),
            labels={"auto": ("Auto", "Half precision on GPUs, full precision on the CPU"),
                    "float16": ("Half (fp16)", "Half the memory; not for GTX 16xx cards"),
                    "bfloat16": ("BFloat16", "Half the memory on recent GPUs"),
                    "float32": ("Full (fp32)", "Most memory, most robust")}),
    Setting("vae_batch", "VAE Batch", "Frames decoded at a time (lower: less memory)", ("vae_batch",)),
    Setting("offline", "Offline", "Use only models already on disk; also on whenever Blender's online access is off",
            ("offline",)),
    Setting("report_clip", "CLIP Model", "CLIP model of the consistency report's CLIP metrics: a hub id (e.g. "
            "openai/clip-vit-base-patch32) or a folder; offline it must be on disk. Empty: not computed",
            ("report_clip",)),
    Setting("allow_pickle", "Allow Pickle Checkpoints", "Load .ckpt/.pt/.pth/.bin model files. They can run "
            "arbitrary code when loaded: only for files from a source you trust", ("allow_pickle",)),
)

SCENE_BY_NAME = {setting.name: setting for setting in SCENE_SETTINGS}
PREFERENCE_BY_NAME = {setting.name: setting for setting in PREFERENCE_SETTINGS}
PER_MODE = contract.per_mode_names(SCENE_SETTINGS)  # stored in each mode's group (Scene.t2vz.<group>.<name>)
PREFS_PREFIX = "prefs."  # setting keys of preferences ("prefs.base_model") in problem maps


def owner(settings: Any, name: str) -> Any:
    """The struct that stores ``name`` for the current mode: its mode group for per-mode settings, else ``settings``.

    For ``layout.prop(owner(settings, name), name)``; reading and writing ``settings.<name>`` works either way.
    """
    if name in PER_MODE:
        return getattr(settings, modes.get(settings.mode).group, settings)
    return settings


def setting_for_field(field: str, mode: str) -> str:
    """The key of the setting that fills request field ``field`` in ``mode`` (``prefs.`` for preferences), else of
    one that fills it in another mode (Width when a source mode forces a size); "" when none does.
    ``controls[1].scale`` is looked up as ``controls.scale``."""
    base = field.split("[")[0] + ("." + field.rpartition(".")[2] if "]." in field else "")
    for any_mode in (False, True):
        for prefix, table in (("", SCENE_SETTINGS), (PREFS_PREFIX, PREFERENCE_SETTINGS)):
            for setting in table:
                if (any_mode or mode in setting.modes) and base in setting.fields_for(mode):
                    return prefix + setting.name
    return ""
