"""Text2Video-Zero text→video (paper Sect. 3, Alg. 1; docs/method.md §2-§6), as numbered steps.

Notation: frame 0 is the anchor (the paper's frame 1); T = ``t1``, T′ = ``t0`` (noise levels, see sampling/schedule.py);
x¹_T, x¹_T′ the anchor latent at T and T′; W_k the warp of frame k (pipelines/motion.py: drift, camera path,
homographies or displacement fields); ε_k frame k's re-noising draw.

1. check inputs (motion fields too)  2. encode prompts  3. plan the schedule  4. anchor noise x¹ (diffusers' still
noise for the seed)  5. anchor alone down to T (keep x¹_T) and on to T′  6. x̃ᵏ = W_k(x¹_T′) (holes: fresh noise),
then DDPM-forward T′→T with ε_k
7. optional background smoothing at T  8. all frames from T, step-major, cross-frame attention  9. decode, stream.
"""

from __future__ import annotations

import torch

from ..acceleration.compile import prepared
from ..acceleration.feature_reuse import FeatureReuse
from ..attention.cross_frame import CrossFrameState, cross_frame_attention
from ..protocol import TextToVideoRequest
from ..sampling.context import JobContext
from ..sampling.decoding import stream_frames
from ..sampling.guidance import guidance_embedding, text_branches
from ..sampling.prompts import PromptTable
from ..sampling.sampler import NoisePredictor, denoise
from ..sampling.schedule import plan_schedule
from ..sampling.seeding import anchor_generator, frame_generator
from ..validation import check_request, frame_range
from .background import load_masks, smooth_background
from .baseline import independent_stills
from .dynamics import motion_latents
from .motion import plan_motion


@torch.no_grad()
def text_to_video(request: TextToVideoRequest, model, ctx: JobContext, *, state: CrossFrameState | None = None) -> None:
    """Generate ``request.frames`` frames (or the requested sub-range) and hand each to ``ctx.frame`` in order."""
    from diffusers.utils.torch_utils import randn_tensor

    from ..sampling.schedulers import is_sigma_space, may_jump

    # 1. Check inputs: everything is validated before the first UNet call (feature reuse: against this UNet too).
    check_request(request)
    request, state = independent_stills(request, state)  # baseline: each frame a still
    branches = text_branches(model.unet, request.guidance)
    reuse = FeatureReuse.for_models(request.cache_interval, request.cache_depth, len(branches), model.unet)
    first, last = frame_range(request, request.frames)
    wanted = list(range(first, last + 1))
    frames = [0] + [k for k in wanted if k != 0]  # rows: the anchor, then the frames to render
    device, dtype = model.device, model.unet.dtype
    h, w = request.height // _vae_scale(model.vae), request.width // _vae_scale(model.vae)
    masks = load_masks(request.mask_dir, frames, (h, w), device) if request.smooth_bg else None
    motion = plan_motion(request, frames, request.frames, (request.width, request.height), (h, w))
    ctx.on_stage("prepare")

    # 2. Prompts, encoded once: [uncond, cond] branches with CFG, [cond] without (sampling/guidance.py).
    table = PromptTable(model.tokenizer, model.text_encoder, device, negative=request.negative_prompt,
                        prompts=[request.prompt], per_frame=request.frame_prompts)
    state = state or CrossFrameState()
    predictor = NoisePredictor(model.unet, len(branches), lambda fs: table.batch(branches, fs), request.guidance,
                               state=state, reuse=reuse,
                               timestep_cond=guidance_embedding(model.unet, request.guidance, device, dtype))

    # 3. Schedule: the scheduler's grid for S steps; T and T′ placed on it by noise level.
    pre = model.make_scheduler(request.scheduler)
    sigma_space = is_sigma_space(pre)
    plan = plan_schedule(pre, request.steps, request.t0, request.t1, may_jump=may_jump(pre))
    main = model.make_scheduler(request.scheduler)
    main.set_timesteps(request.steps)
    if hasattr(main, "set_begin_index"):
        main.set_begin_index(plan.t1_index)  # multistep/sigma schedulers start counting at T
    ctx.plan(request.steps, plan.anchor_steps + plan.main_steps * len(frames))

    # 4. Anchor noise: exactly the latents StableDiffusionPipeline draws for this seed.
    gen0 = anchor_generator(request.seed)
    x = randn_tensor((1, 4, h, w), generator=gen0, device=device, dtype=dtype) * pre.init_noise_sigma

    models = {"unet": model.unet}
    ctx.on_stage("denoise")
    with prepared(list(models.values()), compile=request.compile, channels_last=request.channels_last), \
            cross_frame_attention(models, state):
        # 5-6. The anchor alone to T and T′; warp x¹_T′ per frame and forward-diffuse it back to T.
        latents, _ = motion_latents(predictor, pre, main, plan, x, frames, seed=request.seed, motion=motion,
                                    state=state, models=models, ctx=ctx, generator=gen0, sigma_space=sigma_space)
        # 7. Background smoothing (paper Sect. 3.3): blend the background with the warped anchor, once, at T.
        if masks is not None and len(frames) > 1:
            latents[1:] = smooth_background(latents[:1], latents[1:], frames[1:], masks, request.smooth_bg_strength,
                                            motion)

        # 8. Every frame from T down, step-major, anchor K/V recorded once per step and replayed per chunk.
        generators = [gen0] + [frame_generator(request.seed, k, "step") for k in frames[1:]]
        latents = denoise(predictor, main, latents, frames, plan.raw[plan.t1_index:], state=state,
                          models=models, chunk_size=request.chunk_size, exact_anchor=request.exact_anchor, ctx=ctx,
                          generators=generators, first_index=plan.t1_index, total_steps=len(plan.timesteps),
                          fixed_shapes=request.compile, job_frames=request.frames)

    # 9. Decode in micro-batches; frames stream to the caller in order.
    ctx.on_stage("decode")
    stream_frames(model.vae, latents, frames, wanted, ctx, batch=request.vae_batch)


def _vae_scale(vae) -> int:
    return 2 ** (len(vae.config.block_out_channels) - 1)
