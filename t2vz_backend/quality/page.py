"""``report.html``: the report in one self-contained page (report.png embedded, no scripts, no links out)."""

from __future__ import annotations

import base64
import html
from typing import Any

LABELS = {
    "warp_error": ("warp error", "0-255, lower is steadier"),
    "warp_error_max": ("worst pair's warp error", "0-255"),
    "psnr": ("flow-compensated PSNR", "dB, higher is steadier"),
    "ssim": ("flow-compensated SSIM", "0-1, higher is steadier"),
    "occluded": ("left out by the occlusion check", "fraction of the pixels"),
    "clip_consistency": ("CLIP frame consistency", "0-1, higher is steadier"),
    "clip_text": ("CLIP text alignment", "100 x cosine, higher follows the prompt better"),
}
STYLE = """body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1200px;color:#222;padding:0 16px}
table{border-collapse:collapse;margin:8px 0 16px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f2f2f2}td:first-child,th:first-child{text-align:left}img{max-width:100%;border:1px solid #ddd}
.worst{background:#fde2e2}.note{color:#555}code{background:#f4f4f4;padding:0 3px}"""


def _value(value: Any) -> str:
    if value is None:
        return "not computed"
    return f"{value:.4g}" if isinstance(value, float) else html.escape(str(value))


def _summary_rows(report: dict[str, Any]) -> str:
    compare = report.get("compare")
    rows = []
    for key, (label, unit) in LABELS.items():
        cells = [f"<td>{html.escape(label)} <span class=note>({html.escape(unit)})</span></td>",
                 f"<td>{_value(report['summary'].get(key))}</td>"]
        if compare is not None:
            cells += [f"<td>{_value(compare['summary'].get(key))}</td>",
                      f"<td>{_value(compare['difference'][key])}</td>"]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    head = "<tr><th>figure</th><th>this result</th>" + (
        "<th>compared</th><th>difference</th>" if compare is not None else "") + "</tr>"
    return head + "".join(rows)


def _pair_rows(report: dict[str, Any]) -> str:
    worst = set(report["summary"]["worst_pairs"])
    clip = any("clip_consistency" in p for p in report["pairs"])
    head = "<tr><th>pair</th><th>warp error</th><th>PSNR</th><th>SSIM</th><th>occluded</th>" + (
        "<th>CLIP frames</th>" if clip else "") + "</tr>"
    rows = []
    for p in report["pairs"]:
        cells = [f"{p['frames'][0]} → {p['frames'][1]}", p["warp_error"], p["psnr"], p["ssim"], p["occluded"]]
        if clip:
            cells.append(p.get("clip_consistency"))
        css = " class=worst" if p["pair"] in worst else ""
        rows.append(f"<tr{css}>" + "".join(f"<td>{_value(c)}</td>" for c in cells) + "</tr>")
    return head + "".join(rows)


def render_html(report: dict[str, Any], png: bytes) -> str:
    """The page: headline table, the figure, how the motion was found, CLIP status, method, every pair."""
    flow = report["flow"]
    clip = report["clip"]
    job = report.get("job") or {}
    compare = report.get("compare")
    parts = [f"<!doctype html><html lang=en><head><meta charset=utf-8><title>t2vz consistency report</title>"
             f"<style>{STYLE}</style></head><body><h1>Temporal consistency</h1>"]
    if job:
        described = ", ".join(f"{html.escape(str(k))} {html.escape(str(v))}" for k, v in job.items())
        parts.append(f"<p class=note>job: {described}</p>")
    parts.append(f"<p>{report['frames']['count']} frames, {report['frames']['width']}×{report['frames']['height']}. "
                 f"Motion: {html.escape(flow['text'])}"
                 + (f" (<code>{html.escape(str(flow['path']))}</code>)" if flow.get("path") else "") + ".</p>")
    if compare is not None:
        gain = compare.get("gain")
        text = f"compared with <code>{html.escape(compare['folder'])}</code>, measured the same way"
        if gain is not None:
            text += f": warp error {abs(gain) * 100:.0f} % {'lower' if gain >= 0 else 'higher'} here"
        parts.append(f"<p>{text}.</p>")
    parts.append(f"<table>{_summary_rows(report)}</table>")
    if not clip["computed"]:
        parts.append(f"<p class=note>CLIP metrics not computed: {html.escape(clip.get('reason', ''))}</p>")
    else:
        parts.append(f"<p class=note>CLIP model: <code>{html.escape(clip['model'])}</code></p>")
    image = base64.b64encode(png).decode("ascii")
    parts.append(f'<p><img alt="contact sheet and warp error per pair" src="data:image/png;base64,{image}"></p>')
    parts.append("<h2>Method</h2><ul>" + "".join(
        f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>" for k, v in report["method"].items()) + "</ul>")
    parts.append(f"<h2>Every pair</h2><table>{_pair_rows(report)}</table></body></html>\n")
    return "".join(parts)
