"""Video Instruct-Pix2Pix: edit a frame sequence with an instruction (Text2Video-Zero Sect. 4.3; docs/method.md §8).

Consistency comes from each frame's own image conditioning plus cross-frame attention to the anchor in the 3-branch
layout G = 3: [instruction + image], [no text + image], [no text + no image] (docs/method.md §4.2), guided as
ε̂ = ε_∅∅ + s_T·(ε_TI − ε_∅I) + s_I·(ε_∅I − ε_∅∅). Frame 0 draws its noise (initial and per-step) from the generator
diffusers would use for the seed, so it equals a StableDiffusionInstructPix2PixPipeline still; frame k draws from
its own (seed, k) generator, so neither chunking nor sub-ranges change a frame — unlike the reference, whose
re-seeded ancestral noise repeats with the chunk period. Motion dynamics are off by default; any motion field of
text→video (drift, camera path, homographies, displacement fields) switches them on: the anchor then runs alone to
T′ and the other frames start from its warped, re-noised latent (pipelines/dynamics.py).

1. check inputs and read the frames  2. encode the instruction  3. image latents  4. per-frame initial noise (or motion)
5. all frames, step-major  6. decode, stream.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..acceleration.compile import prepared
from ..acceleration.feature_reuse import FeatureReuse
from ..attention.cross_frame import CrossFrameState, cross_frame_attention
from ..errors import InputError, ModelLoadError
from ..media.reader import fit_size, read_frames, resize_frames
from ..protocol import EditVideoRequest
from ..sampling.context import JobContext
from ..sampling.decoding import stream_frames
from ..sampling.prompts import PromptTable
from ..sampling.sampler import NoisePredictor, denoise
from ..sampling.seeding import anchor_generator, frame_generator
from ..validation import check_render_range, check_request, frame_range
from .baseline import independent_stills
from .dynamics import guided_schedule, motion_latents
from .motion import plan_motion


@torch.no_grad()
def edit_video(request: EditVideoRequest, model, ctx: JobContext, *, state: CrossFrameState | None = None) -> None:
    """Edit ``request.input`` frame by frame as ``request.instruction`` says; frames go to ``ctx.frame`` in order."""
    from diffusers.utils.torch_utils import randn_tensor

    # 1. Check inputs: the request, the model's 8 input channels, the frames (count, readable, one size).
    check_request(request)
    request, state = independent_stills(request, state)  # baseline: each frame a still
    if model.unet.config.in_channels != 8:
        raise ModelLoadError(
            f"model {model.ref!r} has a UNet with {model.unet.config.in_channels} input channels, not 8",
            field="model", hint="use an InstructPix2Pix model such as timbrooks/instruct-pix2pix")
    guided = request.guidance > 1 and request.image_guidance >= 1
    reuse = FeatureReuse.for_models(request.cache_interval, request.cache_depth, 3 if guided else 1, model.unet)
    source = read_frames(request.input, start=request.input_start, count=request.frames or None,
                         fps=request.input_fps or None)
    count = len(source)
    if request.frames and count != request.frames:
        raise InputError(f"input {request.input!r} has {count} frames, {request.frames} requested", field="frames",
                         hint="lower frames or give a longer input")
    check_render_range(request, count)
    first, last = frame_range(request, count)
    wanted = list(range(first, last + 1))
    frames = [0] + [k for k in wanted if k != 0]
    size = (request.width, request.height) if request.width else fit_size(*source.size,
                                                                          long_side=request.long_side or None)
    pictures = {k: source.frames[k] for k in frames}
    if size != source.size:
        pictures = dict(zip(frames, resize_frames([pictures[k] for k in frames], size)))
    device, dtype = model.device, model.unet.dtype
    latent_size = (size[1] // _vae_scale(model.vae), size[0] // _vae_scale(model.vae))
    motion = plan_motion(request, frames, count, size, latent_size)
    ctx.on_stage("prepare")

    # 2. Prompts: diffusers' Instruct-Pix2Pix order [instruction, negative, negative]; no CFG when either scale is
    #    too low to act (its rule: guidance > 1 and image_guidance >= 1).
    branches = ("cond", "uncond", "uncond") if guided else ("cond",)
    table = PromptTable(model.tokenizer, model.text_encoder, device, negative=request.negative_prompt,
                        prompts=[request.instruction])

    # 3. Image latents (the posterior's mode, unscaled, as the pipeline does), per frame; zeros for [∅∅].
    latents_of = _encode_frames(model.vae, pictures, frames, device, dtype, batch=request.vae_batch)

    def image_latents(fs: Sequence[int]) -> torch.Tensor:
        rows = torch.cat([latents_of[k] for k in fs])
        return torch.cat([rows, rows, torch.zeros_like(rows)]) if guided else rows

    state = state or CrossFrameState()
    predictor = NoisePredictor(model.unet, len(branches), lambda fs: table.batch(branches, fs), request.guidance,
                               image_guidance=request.image_guidance, image_latents=image_latents, state=state,
                               reuse=reuse)

    # 4. Initial noise: per frame, each frame's generator going on to feed its stochastic scheduler steps; with
    #    motion, the anchor runs alone to T′ and the other frames start from its warped latent (as in text→video).
    scheduler = model.make_scheduler(request.scheduler)
    plan, start = guided_schedule(scheduler, request.steps, motion.active)
    anchor_work = plan.anchor_steps if motion.active else 0
    ctx.plan(request.steps, anchor_work + (len(plan.timesteps) - start) * len(frames))
    generators = [anchor_generator(request.seed)] + [frame_generator(request.seed, k, "noise") for k in frames[1:]]
    shape = (1, 4, *latent_size)
    rows = generators if not motion.active else generators[:1]
    latents = torch.cat([randn_tensor(shape, generator=g, device=device, dtype=dtype) for g in rows])
    latents = latents * scheduler.init_noise_sigma

    # 5. Step-major loop with cross-frame attention (UNet only: no ControlNet in this mode).
    models = {"unet": model.unet}
    ctx.on_stage("denoise")
    with prepared(list(models.values()), compile=request.compile, channels_last=request.channels_last), \
            cross_frame_attention(models, state):
        if motion.active:
            from ..sampling.schedulers import is_sigma_space

            pre = model.make_scheduler(request.scheduler)
            pre.set_timesteps(request.steps)
            latents, _ = motion_latents(predictor, pre, scheduler, plan, latents, frames, seed=request.seed,
                                        motion=motion, state=state, models=models, ctx=ctx, generator=generators[0],
                                        sigma_space=is_sigma_space(scheduler))
        latents = denoise(predictor, scheduler, latents, frames, plan.raw[start:], state=state, models=models,
                          chunk_size=request.chunk_size, exact_anchor=request.exact_anchor, ctx=ctx,
                          generators=generators, first_index=start, total_steps=len(plan.timesteps),
                          fixed_shapes=request.compile, job_frames=count)

    # 6. Decode and stream.
    ctx.on_stage("decode")
    stream_frames(model.vae, latents, frames, wanted, ctx, batch=request.vae_batch)


def _encode_frames(vae, pictures: dict[int, np.ndarray], frames: Sequence[int], device: torch.device,
                   dtype: torch.dtype, *, batch: int) -> dict[int, torch.Tensor]:
    """VAE latents (1, 4, h, w) per frame; the anchor alone, the others in micro-batches."""
    out: dict[int, torch.Tensor] = {}
    groups = [list(frames[:1])] + [list(frames[i:i + batch]) for i in range(1, len(frames), batch)]
    for group in groups:
        images = np.stack([pictures[k] for k in group]).astype(np.float32) / 255.0
        tensor = torch.from_numpy(images).permute(0, 3, 1, 2) * 2.0 - 1.0  # [-1, 1], like VaeImageProcessor
        encoded = vae.encode(tensor.to(device=device, dtype=vae.dtype)).latent_dist.mode().to(dtype)
        for k, row in zip(group, encoded):
            out[k] = row[None]
    return out


def _vae_scale(vae) -> int:
    return 2 ** (len(vae.config.block_out_channels) - 1)
