"""T and T' as noise levels on the scheduler's grid (docs/method.md §2.2-§2.5)."""

from __future__ import annotations

import math

import pytest
import torch
from diffusers import DDIMScheduler, EulerDiscreteScheduler

from t2vz_backend.errors import InvalidRequestError
from t2vz_backend.sampling.schedule import plan_schedule, renoise

SD_CONFIG = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "clip_sample": False,
             "set_alpha_to_one": False, "steps_offset": 1, "num_train_timesteps": 1000}


def test_default_schedule_reproduces_the_reference_timesteps():
    plan = plan_schedule(DDIMScheduler.from_config(SD_CONFIG), 50, 881, 941)
    assert plan.timesteps[:6] == (981, 961, 941, 921, 901, 881)
    assert (plan.t1, plan.t0) == (941, 881)
    assert plan.anchor_steps == 5  # 981, 961 to T; 941, 921, 901 on to T'
    assert plan.main_steps == 48 and plan.timesteps[plan.t1_index:][-1] == 1


@pytest.mark.parametrize("steps", [2, 3, 10, 20, 25, 30, 60])
def test_any_step_count_places_t_and_t_prime(steps):
    plan = plan_schedule(DDIMScheduler.from_config(SD_CONFIG), steps, 881, 941)
    assert 0 <= plan.t1_index < plan.t0_index < len(plan.timesteps)
    assert plan.t1 > plan.t0


def test_bad_levels_are_refused_naming_them():
    with pytest.raises(InvalidRequestError, match="t0=941, t1=881"):
        plan_schedule(DDIMScheduler.from_config(SD_CONFIG), 50, 941, 881)


def test_vp_renoise_uses_the_exact_alpha_ratio():
    scheduler = DDIMScheduler.from_config(SD_CONFIG)
    plan = plan_schedule(scheduler, 50, 881, 941)
    ratio = float(scheduler.alphas_cumprod[941] / scheduler.alphas_cumprod[881])
    assert math.isclose(ratio, 0.5305, abs_tol=5e-4)
    x, eps = torch.ones(1, 4, 2, 2), torch.full((1, 4, 2, 2), 2.0)
    out = renoise(scheduler, plan, x, eps, sigma_space=False)
    torch.testing.assert_close(out, torch.full_like(x, math.sqrt(ratio) + 2 * math.sqrt(1 - ratio)))


def test_sigma_renoise_adds_the_sigma_gap():
    scheduler = EulerDiscreteScheduler.from_config(SD_CONFIG)
    plan = plan_schedule(scheduler, 20, 881, 941)
    s1, s0 = float(scheduler.sigmas[plan.t1_index]), float(scheduler.sigmas[plan.t0_index])
    x, eps = torch.zeros(1, 1, 1, 1), torch.ones(1, 1, 1, 1)
    out = renoise(scheduler, plan, x, eps, sigma_space=True)
    assert math.isclose(float(out), math.sqrt(s1 ** 2 - s0 ** 2), rel_tol=1e-5)
