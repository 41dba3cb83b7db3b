"""The consistency report as data: what ``report.json`` holds, its headline figures, and a comparison of two.

The document depends only on the frames, the settings and the library versions, never on the time or the folder it
was written to, so two runs of the same job give byte-identical reports. Figures are rounded to 4 decimals.

Headline (``summary``): mean warp error over the pairs (0-255, lower is steadier), its worst pair, mean flow-
compensated PSNR (dB) and SSIM, the fraction of pixels left out by the occlusion check, and the CLIP frame
consistency and text alignment (``None`` when not computed, with the reason under ``clip``).
"""

from __future__ import annotations

import statistics
from typing import Any

from .flow import OCCLUSION_ALPHA, OCCLUSION_BETA, PRESET
from .measure import Measurement
from .pair_metrics import PSNR_MAX

REPORT_FORMAT = "t2vz-consistency-report"
REPORT_VERSION = 1
WORST_PAIRS = 3  # pairs marked on the contact sheet at most
HEADLINE = ("warp_error", "warp_error_max", "psnr", "ssim", "occluded", "clip_consistency", "clip_text")
LOWER_IS_BETTER = {"warp_error", "warp_error_max", "occluded"}
METHOD = {
    "flow": f"OpenCV DIS optical flow, preset {PRESET}, both directions, on grey levels (unless Vector pass)",
    "occlusion": f"forward/backward check |f + b|^2 <= {OCCLUSION_ALPHA} (|f|^2 + |b|^2) + {OCCLUSION_BETA}, "
                 "and the forward target inside the frame",
    "warp_error": "frame t+1 warped onto frame t by the forward flow (bilinear); mean absolute difference over "
                  "the visible pixels, 8-bit levels 0-255, mean of R, G, B",
    "psnr": f"10 log10(255^2 / MSE) over the same pixels, dB; {PSNR_MAX:g} when identical",
    "ssim": "Gaussian-window SSIM (11x11, sigma 1.5) per channel, mean over the visible pixels",
    "clip_consistency": "mean cosine similarity of consecutive frames' CLIP image embeddings",
    "clip_text": "100 x mean cosine similarity of each frame's CLIP embedding and its prompt",
}


def _r(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def worst_pairs(errors: list[float], count: int = WORST_PAIRS) -> list[int]:
    """The pairs that stand out: the ``count`` largest warp errors above the clip's mean, worst first (a steady clip
    has none)."""
    mean = _mean(errors) or 0.0
    ranked = sorted(range(len(errors)), key=lambda k: (-round(errors[k], 4), k))
    return [k for k in ranked if round(errors[k], 4) > round(mean, 4)][:count]


def build_report(m: Measurement, *, job: dict[str, Any] | None = None) -> dict[str, Any]:
    """The report document of a measurement; ``job`` describes the job that made the frames (type, seed, ...)."""
    frames = m.frames
    pairs = []
    for k, metrics in enumerate(m.pairs):
        row = {"pair": k, "frames": [frames.indices[k], frames.indices[k + 1]],
               "warp_error": _r(metrics.warp_error), "psnr": _r(metrics.psnr), "ssim": _r(metrics.ssim),
               "occluded": _r(metrics.occluded)}
        if m.clip_consistency:
            row["clip_consistency"] = _r(m.clip_consistency[k])
        pairs.append(row)
    errors = [p.warp_error for p in m.pairs]
    worst = worst_pairs(errors)
    summary = {
        "warp_error": _r(_mean(errors)),
        "warp_error_max": _r(max(errors)),
        "worst_pairs": worst,
        "psnr": _r(_mean([p.psnr for p in m.pairs])),
        "ssim": _r(_mean([p.ssim for p in m.pairs])),
        "occluded": _r(_mean([p.occluded for p in m.pairs])),
        "clip_consistency": _r(_mean(m.clip_consistency)),
        "clip_text": _r(_mean(m.clip_text)),
    }
    clip = {"computed": m.clip.computed, "model": m.clip.model}
    if not m.clip.computed:
        clip["reason"] = m.clip.reason
    elif m.clip_text:
        clip["text_per_frame"] = [_r(v) for v in m.clip_text]
    return {
        "format": REPORT_FORMAT, "version": REPORT_VERSION,
        "frames": {"count": len(frames), "first": frames.first, "width": frames.size[0],
                   "height": frames.size[1], "names": list(frames.names)},
        "job": job or {},
        "flow": m.flow.describe(),
        "summary": summary,
        "clip": clip,
        "method": METHOD,
        "pairs": pairs,
    }


def compare_reports(this: dict[str, Any], other: dict[str, Any], other_folder: str) -> dict[str, Any]:
    """This report against another measured the same way: both headlines, their difference, pair by pair."""
    difference = {}
    for key in HEADLINE:
        a, b = this["summary"].get(key), other["summary"].get(key)
        difference[key] = None if a is None or b is None else _r(a - b)
    paired = []
    for mine, theirs in zip(this["pairs"], other["pairs"]):
        paired.append({"pair": mine["pair"], "warp_error": [mine["warp_error"], theirs["warp_error"]],
                       "difference": _r(mine["warp_error"] - theirs["warp_error"])})
    return {"folder": other_folder, "frames": other["frames"]["count"], "job": other.get("job", {}),
            "summary": other["summary"], "clip": other["clip"], "difference": difference, "pairs": paired,
            "gain": consistency_gain(this["summary"], other["summary"])}


def consistency_gain(this: dict[str, Any], other: dict[str, Any]) -> float | None:
    """How much lower this warp error is than the other's, as a fraction of the other's (0.6 = 60 % lower)."""
    a, b = this.get("warp_error"), other.get("warp_error")
    if a is None or not b:
        return None
    return _r((b - a) / b)
