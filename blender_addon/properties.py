"""The scene settings of a job: one PropertyGroup behind ``Scene.t2vz``.

No ``from __future__ import annotations`` here: Blender reads the ``bpy.props`` annotations as objects.
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

MODES = (
    ("TEXT2VIDEO", "Text → Video", "Make a video from the prompt alone (Text2Video-Zero)", "TEXT", 0),
    ("CONTROLNET", "Restyle Strips", "Restyle the selected strips, following their edges, depth or pose "
     "with a ControlNet", "SEQ_SEQUENCER", 1),
    ("PIX2PIX", "Edit Strips", "Edit the selected strips with an instruction (Video Instruct-Pix2Pix)",
     "GREASEPENCIL", 2),
    ("SCENE", "From Scene Passes", "Drive a ControlNet with pose, depth or edges rendered from the 3D scene",
     "SCENE_DATA", 3),
)
CONTROL_KINDS = (
    ("CANNY", "Edges", "Canny edges (ControlNet canny)"),
    ("DEPTH", "Depth", "Depth maps (ControlNet depth)"),
    ("POSE", "Pose", "OpenPose skeletons (ControlNet openpose)"),
)
CONTROL_INPUTS = (
    ("EXTRACT", "Extract From Frames", "The strips are ordinary footage: the backend extracts the control maps"),
    ("MAPS", "Strips Are Control Maps", "The strips already are edge, depth or pose maps"),
)


class T2VZ_PG_settings(bpy.types.PropertyGroup):
    mode: EnumProperty(name="Mode", description="What to generate", items=MODES, default="TEXT2VIDEO")
    prompt: StringProperty(name="Prompt", description="What the video shows (the edit instruction in Edit mode)",
                           default="")
    negative_prompt: StringProperty(name="Negative Prompt", description="What the video should not show",
                                    default="")
    seed: IntProperty(name="Seed", description="Random seed: the same seed and settings make the same video",
                      default=0, min=0)
    steps: IntProperty(name="Steps", description="Denoising steps (more: slower, finer; 50 is the paper's "
                       "text-to-video setting)", default=20, min=2, max=1000, soft_max=100)
    guidance: FloatProperty(name="Guidance", description="How strongly the prompt is followed (classifier-free "
                            "guidance scale)", default=7.5, min=0.0, soft_max=20.0, precision=1)
    image_guidance: FloatProperty(name="Image Guidance", description="Edit mode: how closely the source frames "
                                  "are kept", default=1.5, min=0.0, soft_max=5.0, precision=2)
    width: IntProperty(name="Width", description="Frame width in pixels (a multiple of 8)", default=512,
                       min=8, max=4096, step=8, subtype="PIXEL")
    height: IntProperty(name="Height", description="Frame height in pixels (a multiple of 8)", default=512,
                        min=8, max=4096, step=8, subtype="PIXEL")
    fit_source: BoolProperty(name="Fit Source", description="Keep the source's aspect ratio, with the larger of "
                             "width and height as its long side", default=True)
    frames: IntProperty(name="Frames", description="Number of frames of a text-to-video job", default=8, min=1,
                        soft_max=64)
    use_frame_range: BoolProperty(name="Frame Range", description="Limit the job to a range of timeline frames "
                                  "(off: the whole selection, or the scene range for scene passes)", default=False)
    frame_range_start: IntProperty(name="Start", description="First timeline frame of the job", default=1)
    frame_range_end: IntProperty(name="End", description="Last timeline frame of the job (inclusive)", default=8)
    motion: FloatVectorProperty(name="Motion", description="Camera drift per frame, in percent of the frame "
                                "size (x, y)", size=2, default=(12 / 512 * 100, 12 / 512 * 100),
                                soft_min=-10.0, soft_max=10.0, precision=2, subtype="XYZ")
    t0: IntProperty(name="t0", description="Noise level (training timestep) where the first frame's latent is "
                    "warped: T' in the paper", default=881, min=1, max=998)
    t1: IntProperty(name="t1", description="Noise level (training timestep) from which all frames are denoised: "
                    "T in the paper; must be above t0", default=941, min=2, max=999)
    chunk_size: IntProperty(name="Chunk Size", description="Frames denoised together: lower needs less memory "
                            "and never changes the result", default=8, min=1, soft_max=32)
    exact_anchor: BoolProperty(name="Exact First Frame", description="Give the first frame a denoising pass of "
                               "its own each step, so it is bit-identical to a still with the same seed. Off: one "
                               "pass fewer per step (faster), the first frame equal up to rounding", default=True)
    control_kind: EnumProperty(name="Control", description="What the ControlNet follows", items=CONTROL_KINDS,
                               default="CANNY")
    control_input: EnumProperty(name="Source", description="Whether the strips are footage or control maps",
                                items=CONTROL_INPUTS, default="EXTRACT")
    control_scale: FloatProperty(name="Control Strength", description="ControlNet conditioning scale",
                                 default=1.0, min=0.0, soft_max=2.0, precision=2)
    # Scene passes (Properties editor, Scene tab)
    pass_pose: BoolProperty(name="Pose From Armatures", description="OpenPose skeletons from the scene's "
                            "armatures, seen by the active camera", default=True)
    pass_depth: BoolProperty(name="Depth From Z/Mist", description="Depth rendered from the scene, normalised "
                             "over the whole shot", default=False)
    depth_source: EnumProperty(
        name="Depth Source", description="Which render pass gives the depth",
        items=(("AUTO", "Auto", "Mist when the view layer has the Mist pass on and the scene has a World, else Z"),
               ("Z", "Z", "Camera distance, normalised over the whole shot"),
               ("MIST", "Mist", "The Mist pass, normalised by the World's mist start and depth")),
        default="AUTO")
    pass_canny: BoolProperty(name="Edges From Renders", description="Canny edges of the scene's renders",
                             default=False)
    smooth_bg: BoolProperty(name="Smooth Background", description="Text → Video: keep the background of "
                            "the masked objects steady (needs a mask collection)", default=False)
    smooth_bg_strength: FloatProperty(name="Background Strength", description="Weight each frame keeps of its "
                                      "own background", default=0.4, min=0.0, max=1.0, subtype="FACTOR")
    mask_collection: PointerProperty(name="Mask Objects", description="Objects whose masks mark the foreground "
                                     "for background smoothing", type=bpy.types.Collection)


classes = (T2VZ_PG_settings,)


def register() -> None:
    for cls in classes:
        bpy.utils.register_class(cls)
    bpy.types.Scene.t2vz = PointerProperty(type=T2VZ_PG_settings, name="T2V-Zero",
                                           description="T2V-Zero video generation settings")


def unregister() -> None:
    del bpy.types.Scene.t2vz
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
