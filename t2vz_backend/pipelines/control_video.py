"""ControlNet-guided video (Text2Video-Zero Sect. 4.2; docs/method.md §7), as numbered steps.

Consistency comes from one shared initial noise for every frame (x_T¹ = … = x_Tᶠ) and cross-frame attention in the
UNet *and* every ControlNet; the control maps alone make frames differ. Motion dynamics are off by default and can
be asked for with any motion field of text→video (drift, camera path, homographies, displacement fields): then the
anchor runs alone to T′ and the other frames start from its warped latent, as in text→video.

1. check inputs and read the control maps  2. encode prompts  3. schedule  4. initial latents (shared, or motion)
5. all frames, step-major, ControlNets evaluated per chunk with that chunk's maps  6. decode, stream.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..acceleration.compile import prepared
from ..acceleration.feature_reuse import FeatureReuse
from ..attention.cross_frame import CrossFrameState, cross_frame_attention
from ..conditions.maps import load_control_maps
from ..protocol import ControlVideoRequest
from ..sampling.context import JobContext
from ..sampling.decoding import stream_frames
from ..sampling.guidance import guidance_embedding, text_branches
from ..sampling.prompts import PromptTable
from ..sampling.sampler import ControlInput, NoisePredictor, denoise
from ..sampling.seeding import anchor_generator, frame_generator
from ..validation import check_render_range, check_request, frame_range
from .baseline import independent_stills
from .dynamics import guided_schedule, motion_latents
from .motion import plan_motion


@torch.no_grad()
def control_video(request: ControlVideoRequest, model, controlnets: Sequence, ctx: JobContext, *,
                  state: CrossFrameState | None = None) -> None:
    """Render the video guided by ``request.controls`` (one loaded ControlNet per control, in the same order)."""
    from diffusers.utils.torch_utils import randn_tensor

    from ..sampling.schedulers import is_sigma_space

    # 1. Check inputs; read every control's maps at the output size (before any model work).
    check_request(request)
    request, state = independent_stills(request, state)  # baseline: each frame a still
    if len(controlnets) != len(request.controls):
        raise ValueError(f"{len(request.controls)} controls but {len(controlnets)} ControlNets")  # caller bug
    branches = text_branches(model.unet, request.guidance)
    reuse = FeatureReuse.for_models(request.cache_interval, request.cache_depth, len(branches), model.unet,
                                    controlnets)
    maps = load_control_maps(request)
    count = maps.frames
    check_render_range(request, count)
    first, last = frame_range(request, count)
    wanted = list(range(first, last + 1))
    frames = [0] + [k for k in wanted if k != 0]
    width, height = maps.size
    device, dtype = model.device, model.unet.dtype
    scale = 2 ** (len(model.vae.config.block_out_channels) - 1)
    h, w = height // scale, width // scale
    motion = plan_motion(request, frames, count, (width, height), (h, w))
    ctx.on_stage("prepare")

    # 2. Prompts: [uncond, cond] with CFG, [cond] without; the ControlNets see the same embeddings.
    table = PromptTable(model.tokenizer, model.text_encoder, device, negative=request.negative_prompt,
                        prompts=[request.prompt])
    controls = [
        ControlInput(net, _images(maps.maps[i], device, net.dtype), spec.scale, spec.start, spec.end)
        for i, (spec, net) in enumerate(zip(request.controls, controlnets))
    ]
    state = state or CrossFrameState()
    predictor = NoisePredictor(model.unet, len(branches), lambda fs: table.batch(branches, fs), request.guidance,
                               controls=controls, state=state, reuse=reuse,
                               timestep_cond=guidance_embedding(model.unet, request.guidance, device, dtype))

    # 3. Schedule: the scheduler's grid for the step count (T/T′ only matter with motion).
    main = model.make_scheduler(request.scheduler)
    with_motion = motion.active
    sigma_space = is_sigma_space(main)
    plan, start_index = guided_schedule(main, request.steps, with_motion)
    anchor_work = plan.anchor_steps if with_motion else 0
    ctx.plan(request.steps, anchor_work + (len(plan.timesteps) - start_index) * len(frames))

    # 4. Initial latents: StableDiffusionControlNetPipeline's noise for this seed, shared by every frame.
    gen0 = anchor_generator(request.seed)
    noise = randn_tensor((1, 4, h, w), generator=gen0, device=device, dtype=dtype) * main.init_noise_sigma
    # Each distinct module once (two controls may share one ControlNet; their K/V are kept apart by scope).
    distinct = list({id(net): net for net in controlnets}.values())
    models = {"unet": model.unet, **{f"controlnet{i}": net for i, net in enumerate(distinct)}}
    ctx.on_stage("denoise")
    with prepared(list(models.values()), compile=request.compile, channels_last=request.channels_last), \
            cross_frame_attention(models, state):
        if with_motion:
            pre = model.make_scheduler(request.scheduler)
            pre.set_timesteps(request.steps)
            latents, _ = motion_latents(predictor, pre, main, plan, noise, frames, seed=request.seed, motion=motion,
                                        state=state, models=models, ctx=ctx, generator=gen0,
                                        sigma_space=sigma_space)
        else:
            latents = noise.expand(len(frames), -1, -1, -1).clone()

        # 5. Step-major loop; each chunk's ControlNet input is that chunk's maps.
        generators = [gen0] + [frame_generator(request.seed, k, "step") for k in frames[1:]]
        latents = denoise(predictor, main, latents, frames, plan.raw[start_index:], state=state, models=models,
                          chunk_size=request.chunk_size, exact_anchor=request.exact_anchor, ctx=ctx,
                          generators=generators, first_index=start_index,
                          total_steps=len(plan.timesteps), fixed_shapes=request.compile, job_frames=count)

    # 6. Decode and stream.
    ctx.on_stage("decode")
    stream_frames(model.vae, latents, frames, wanted, ctx, batch=request.vae_batch)


def _images(maps: Sequence[np.ndarray], device: torch.device, dtype: torch.dtype):
    """Frames → (f, 3, H, W) in [0, 1], as diffusers' control-image processor makes them (no normalisation)."""

    def lookup(frames: Sequence[int]) -> torch.Tensor:
        batch = np.stack([maps[k] for k in frames]).astype(np.float32) / 255.0
        return torch.from_numpy(batch).permute(0, 3, 1, 2).to(device=device, dtype=dtype)

    return lookup
