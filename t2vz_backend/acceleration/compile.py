"""Opt-in ``compile`` (torch.compile) and ``channels_last`` for a job's UNet and ControlNets.

What is compiled: every resnet, feed-forward, downsampler and upsampler of the models, each on its own ("regional"
compilation). Those hold nearly all the arithmetic outside attention, and they are pure functions of their input,
so the compiled code can never see the engine's attention state (record/replay, per-job text K/V) and feature reuse
can still stop the UNet between any two layers. The attention itself is already one fused SDPA call.

Shapes are kept constant, so nothing recompiles per chunk: with ``compile`` the loop splits each step's frames into
equal calls and pads the one short call by repeating its last frame (sampling/sampler.py ``chunks``); the results of
the real rows do not depend on the padding (every row is computed on its own; attention reads only the anchor). A
job then sees two call shapes: the anchor alone and one chunk. Compiled code is kept on each module, so a warm
worker's next job with the same shapes starts at once; the first job pays the compile (minutes on a CPU).

Both switches are undone when the job ends: the model in the cache is the same plain model for the next job.
Measured effect: docs/benchmarks.md (they stay opt-in where they do not measure faster).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch

COMPILED = frozenset({"ResnetBlock2D", "FeedForward", "Downsample2D", "Upsample2D"})
BACKEND = "inductor"  # torch.compile's default code generator (the tests use "eager": tracing only, quick)
RECOMPILE_LIMIT = 256  # graphs per compiled code object: a layer kind at every width, resolution and call shape
_ATTR = "_t2vz_compiled_forward"  # the compiled forward kept on the module (dies with it)


def compiled_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    return [m for m in model.modules() if type(m).__name__ in COMPILED]


@contextlib.contextmanager
def prepared(models: Sequence[torch.nn.Module], *, compile: bool, channels_last: bool) -> Iterator[None]:
    """Compile the models' layers and/or lay them out channels-last for the duration of a job."""
    backend = BACKEND
    patched: list[torch.nn.Module] = []
    converted: list[torch.nn.Module] = []
    try:
        if channels_last:
            for model in models:
                model.to(memory_format=torch.channels_last)
                converted.append(model)
        if compile:
            import torch._dynamo as dynamo

            dynamo.config.recompile_limit = max(dynamo.config.recompile_limit, RECOMPILE_LIMIT)
            for model in models:
                for layer in compiled_layers(model):
                    fn = getattr(layer, _ATTR, None)
                    if fn is None or getattr(fn, "_t2vz_backend", None) != backend:
                        fn = torch.compile(type(layer).forward.__get__(layer), backend=backend, dynamic=False)
                        fn._t2vz_backend = backend
                        setattr(layer, _ATTR, fn)
                    layer.forward = fn  # an instance attribute shadows the class's forward until the job ends
                    patched.append(layer)
        yield
    finally:
        for layer in patched:
            del layer.forward
        for model in converted:
            model.to(memory_format=torch.contiguous_format)
