"""Scheduler names -> diffusers scheduler objects built from the model's own scheduler config.

Every scheduler is made with ``from_config(model_scheduler_config)``, so the training schedule (SD 1.x:
``scaled_linear`` betas 0.00085..0.012 over 1000 steps, ``steps_offset=1``) always comes from the model, and only
the sampling algorithm changes. The names are those of :data:`t2vz_backend.validation.SCHEDULERS`.

Two families matter to the engine, which re-noises latents between noise levels (docs/method.md §2.5, §2.6):

* VP ("alpha") space: x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps; ``init_noise_sigma == 1``
  (DDIM, DDPM, PNDM, DPM-Solver++, UniPC, TCD, LCM);
* sigma space: x_t = x0 + sigma_t eps with sigma_t = sqrt((1 - abar_t) / abar_t); latents start at
  ``init_noise_sigma`` and ``scale_model_input`` divides by sqrt(sigma^2 + 1) (Euler, Euler ancestral, LMS).

:func:`is_sigma_space` tells them apart.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from ..errors import DependencyError, InvalidRequestError

# name -> (diffusers class, settings forced on top of the model's config, optional dependency)
SCHEDULER_CLASSES: dict[str, tuple[str, dict[str, Any], str]] = {
    "ddim": ("DDIMScheduler", {}, ""),
    "ddpm": ("DDPMScheduler", {}, ""),
    "pndm": ("PNDMScheduler", {"skip_prk_steps": True}, ""),  # PRK warm-up steps waste UNet passes at few steps
    "dpm++": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++"}, ""),  # "DPM++ 2M"
    # "DPM++ 2M SDE": the multistep solver's SDE variant needs no torchsde (DPMSolverSDEScheduler would)
    "dpm++sde": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++"}, ""),
    "unipc": ("UniPCMultistepScheduler", {}, ""),
    "euler": ("EulerDiscreteScheduler", {}, ""),
    "euler_a": ("EulerAncestralDiscreteScheduler", {}, ""),
    "lms": ("LMSDiscreteScheduler", {}, "scipy"),  # integrates its coefficients with scipy.integrate.quad
    "tcd": ("TCDScheduler", {}, ""),
    "lcm": ("LCMScheduler", {}, ""),
}

# Keys whose diffusers defaults are wrong for latent diffusion; applied only when the model's config lacks them.
# A config written for another scheduler class (e.g. Instruct-Pix2Pix ships an Euler ancestral config) does not
# carry DDIM's keys, and DDIM's default clip_sample=True would clip latents (range about +-4) to [-1, 1].
_LATENT_DEFAULTS: dict[str, Any] = {"clip_sample": False, "set_alpha_to_one": False}

# Schedulers whose latents live in sigma space (x0 + sigma * eps), see the module docstring.
SIGMA_SPACE_CLASSES = frozenset({
    "EulerDiscreteScheduler",
    "EulerAncestralDiscreteScheduler",
    "LMSDiscreteScheduler",
    "HeunDiscreteScheduler",
    "KDPM2DiscreteScheduler",
    "KDPM2AncestralDiscreteScheduler",
    "DPMSolverSDEScheduler",
    "EDMEulerScheduler",
    "EDMDPMSolverMultistepScheduler",
})


def make_scheduler(name: str, config: dict[str, Any]) -> Any:
    """A fresh scheduler ``name`` (one of ``SCHEDULER_CLASSES``) configured from the model's scheduler ``config``.

    Args:
        name (`str`): "ddim", "ddpm", "pndm", "dpm++", "dpm++sde", "unipc", "euler", "euler_a", "lms", "tcd", "lcm".
        config (`dict`): the model's ``scheduler/scheduler_config.json`` (``BaseModel.scheduler_config``).

    Raises:
        InvalidRequestError: unknown name (field ``scheduler``).
        DependencyError: the scheduler needs an optional package that is not installed (``lms`` needs scipy).
    """
    entry = SCHEDULER_CLASSES.get(name)
    if entry is None:
        raise InvalidRequestError(
            f"unknown scheduler {name!r}", field="scheduler", hint=f"use one of {', '.join(SCHEDULER_CLASSES)}"
        )
    class_name, forced, dependency = entry
    if dependency and importlib.util.find_spec(dependency) is None:
        raise _missing(name, dependency)
    import diffusers

    cls = getattr(diffusers, class_name)
    settings = {key: value for key, value in _LATENT_DEFAULTS.items() if key not in config}
    settings.update(forced)
    try:
        return cls.from_config({**dict(config), **settings})
    except ImportError as exc:  # diffusers' placeholder class for a missing optional dependency
        raise _missing(name, dependency or "the package named here", str(exc)) from None


def is_sigma_space(scheduler: Any) -> bool:
    """True for schedulers (or scheduler names) whose latents are x0 + sigma * eps (Euler/LMS/Karras style).

    The engine re-noises with x_t = x_s + sqrt(sigma_t^2 - sigma_s^2) * eps for these, and with the DDPM forward
    formula (docs/method.md §2.5) for VP-space schedulers.
    """
    if isinstance(scheduler, str):
        entry = SCHEDULER_CLASSES.get(scheduler)
        if entry is None:
            raise InvalidRequestError(f"unknown scheduler {scheduler!r}", field="scheduler")
        return entry[0] in SIGMA_SPACE_CLASSES
    return type(scheduler).__name__ in SIGMA_SPACE_CLASSES


def may_jump(scheduler: Any) -> bool:
    """True for VP ε-prediction schedulers: T′ may then leave a coarse grid in one DDIM step (sampling/schedule.py)."""
    return not is_sigma_space(scheduler) and scheduler.config.get("prediction_type") == "epsilon"


def _missing(name: str, dependency: str, detail: str = "") -> DependencyError:
    message = f"scheduler {name!r} needs the optional package {dependency!r}, which is not installed"
    if detail:
        message += f" ({detail.strip()})"
    return DependencyError(
        message, field="scheduler", hint=f"install it into the backend environment (pip install {dependency}), "
        "or choose another scheduler such as ddim or euler"
    )
