"""The printed report and target checks of bench_guided.py (ControlNet / Pix2Pix video vs diffusers' docs recipe)."""

from __future__ import annotations

from bench_report import memory_targets, target_lines, target_row

TARGETS = {"time_vs_recipe": 0.95}  # memory: bench_report.TARGETS["mem_32_vs_8"]


def report(result: dict) -> str:
    cfg = result["config"]
    lines = [f"t2vz guided video vs diffusers' docs recipe: {cfg['size']}x{cfg['size']}, {cfg['steps']} DDIM steps, "
             f"guidance {cfg['guidance']} (image {cfg['image_guidance']}), UNet {cfg['model']['unet_channels']}, "
             f"{cfg['device']} {cfg['dtype']}, {cfg['threads']} threads (OMP_WAIT_POLICY={cfg['omp_wait_policy']}), "
             f"rounds per frame count {cfg['repeats']}"]
    for mode, res in result["modes"].items():
        for frames, rows in res["timing"].items():
            lines += ["", f"{mode}, {frames} frames (UNet/CN/other s: inside the best run):",
                      f"{'contender':<48} {'UNet calls':>10} {'frame-steps':>11} {'CN calls':>8} {'best s':>7} "
                      f"{'median s':>8} {'cpu s':>7} {'vs recipe':>9} {'cpu vs':>6} | {'UNet s':>7} {'CN s':>6} "
                      f"{'other s':>7}"]
            for r in rows.values():
                cn = r["controlnet_calls"] if r["controlnet_calls"] is not None else "-"
                cn_s = f"{r['best_controlnet_s']:.2f}" if r["best_controlnet_s"] is not None else "-"
                lines.append(f"{r['name']:<48} {r['unet_calls']:>10} {r['unet_frame_steps']:>11} {cn:>8} "
                             f"{r['best_s']:>7.2f} {r['median_s']:>8.2f} {r['best_cpu_s']:>7.2f} "
                             f"{r['vs_recipe']:>9.3f} {r['cpu_vs_recipe']:>6.3f} | {r['best_unet_s']:>7.2f} "
                             f"{cn_s:>6} {r['best_other_s']:>7.2f}")
        if res["memory"]:
            lines += ["", f"{mode}, peak memory ({cfg['mem_steps']} steps, fresh process each):",
                      f"{'contender':<48} {'frames':>6} {'process peak MiB':>16} {'ratio':>6} {'job peak MiB':>12} "
                      f"{'job delta MiB':>13} {'ratio':>6}"]
            for key, runs in res["memory"].items():
                for m in runs:
                    job = (f"{m['job_peak_rss_mib']:>12.0f} {m['job_delta_mib']:>13.1f} {m['job_delta_ratio']:>6.2f}"
                           if m.get("job_peak_rss_mib") is not None else "-")
                    lines.append(f"{res['names'][key]:<48} {m['frames']:>6} {m['process_peak_rss_mib']:>16.0f} "
                                 f"{m['process_peak_rss_ratio']:>6.3f} {job}")
    return "\n".join(lines + target_lines(result["targets"], 70))


def targets(modes: dict) -> dict:
    out = {}
    for mode, res in modes.items():
        for frames, rows in res["timing"].items():
            for key, r in rows.items():
                if key.startswith("ours"):
                    out[f"{mode}: {r['name']} / recipe, {frames} frames"] = target_row(
                        r["vs_recipe"], TARGETS["time_vs_recipe"], r["cpu_vs_recipe"])
        for key, runs in res["memory"].items():
            if len(runs) >= 2:
                out.update(memory_targets(f"{mode}: {res['names'][key]}: ", runs))
    return out
