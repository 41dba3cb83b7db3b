"""Peak-memory measurement (fresh subprocesses), the run record and the printed reports' shared parts;
the report and target checks of bench_text2video.py."""

from __future__ import annotations

import gc
import json
import os
import platform
import resource
import subprocess
import sys
import time

TARGETS = {"ours_vs_base": 1.00, "ours_vs_old": 0.90, "mem_32_vs_8": 1.15}


# ------------------------------------------------------------------------------------------------ peak memory


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def mem_child(args, run_job) -> dict:
    """Measure one job in this (fresh) process: ``run_job()`` runs our engine with frames discarded."""
    import torch

    gc.collect()
    rss_before = _status_kib("VmRSS")
    # This process's own peak so far (imports, model construction). Not ru_maxrss: on Linux that is inherited from
    # the parent across fork/exec, so a child of a big benchmark process would report the parent's peak.
    hwm_before = _status_kib("VmHWM")
    try:  # reset VmHWM to the current RSS so the job's own peak is visible (Linux >= 4.0)
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        reset = True
    except OSError:
        reset = False
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    run_job()
    hwm_after = _status_kib("VmHWM")
    result = {"frames": args.mem_child, "rss_before_job_mib": rss_before / 1024,
              "job_peak_rss_mib": hwm_after / 1024 if reset else None,
              "process_peak_rss_mib": max(hwm_before, hwm_after) / 1024,
              "ru_maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if args.device.startswith("cuda"):
        result["cuda_peak_alloc_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return result


def without_json(argv: list[str]) -> list[str]:
    """``argv`` without ``--json PATH`` (memory children print their result instead of writing the file)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--json":
            skip = True
        elif not arg.startswith("--json="):
            out.append(arg)
    return out


def measure_memory(script: str, frame_counts: list[int], argv: list[str]) -> list[dict]:
    """Run ``script argv --mem-child N`` for each N in a fresh process; ratios are to the first count."""
    out = []
    for frames in frame_counts:
        cmd = [sys.executable, script, *argv, "--mem-child", str(frames)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=dict(os.environ))
        line = next((x for x in proc.stdout.splitlines() if x.startswith("MEM ")), None)
        if proc.returncode or line is None:
            raise RuntimeError(f"memory run at {frames} frames failed:\n{proc.stderr[-3000:]}")
        row = json.loads(line[4:])
        if row["job_peak_rss_mib"] is not None:
            row["job_delta_mib"] = row["job_peak_rss_mib"] - row["rss_before_job_mib"]
        out.append(row)
        print(f"  {frames:3d} frames: process peak {row['process_peak_rss_mib']:.0f} MiB", flush=True)
    first = out[0] if out else {}
    for row in out:
        for key in ("process_peak_rss_mib", "job_peak_rss_mib", "job_delta_mib", "cuda_peak_alloc_mib"):
            if row.get(key) is not None and first.get(key):
                row[key.replace("_mib", "_ratio")] = row[key] / first[key]
    return out


# ------------------------------------------------------------------------------------------------ report


def _table(title: str, rows: dict) -> list[str]:
    lines = ["", title, f"{'contender':<46} {'frame-steps':>11} {'calls':>5} {'best s':>7} {'median s':>8} "
             f"{'vs base':>7} {'vs old':>6} | {'cpu s':>7} {'vs base':>7} {'vs old':>6}"]
    for name, r in rows.items():
        vs_old = f"{r['vs_old']:.3f}" if r["vs_old"] else "-"
        cpu_old = f"{r['cpu_vs_old']:.3f}" if r["cpu_vs_old"] else "-"
        lines.append(f"{name:<46} {r['unet_frame_steps']:>11} {r['unet_calls']:>5} {r['best_s']:>7.2f} "
                     f"{r['median_s']:>8.2f} {r['vs_base']:>7.3f} {vs_old:>6} | {r['best_cpu_s']:>7.2f} "
                     f"{r['cpu_vs_base']:>7.3f} {cpu_old:>6}")
    return lines


# ------------------------------------------------------------------------------------------------ shared report parts


def run_info() -> dict:
    """Threads, OpenMP wait policy, machine and library versions: recorded with every result."""
    import torch

    return {"threads": torch.get_num_threads(), "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
            "machine": f"{platform.machine()} {os.cpu_count()} CPUs, {platform.system()}",
            "versions": {"torch": torch.__version__, "diffusers": __import__("diffusers").__version__}}


def target_row(measured: float, target: float, cpu: float | None = None) -> dict:
    """One reported target: the measured ratio (wall, and CPU time if given) against its limit."""
    return {"measured": measured, "target": target, "cpu": cpu, "met": measured <= target}


def memory_targets(prefix: str, runs: list[dict]) -> dict:
    """Target rows for the last of ``runs`` (frame counts ascending) against the first: process peak, job growth,
    CUDA peak, each where measured. ``prefix`` starts every label."""
    first, last = runs[0], runs[-1]
    span = f"{last['frames']} / {first['frames']} frames"
    rows = {}
    for label, key in (("process peak RSS", "process_peak_rss_ratio"), ("job RSS growth", "job_delta_ratio"),
                       ("CUDA peak", "cuda_peak_alloc_ratio")):
        if last.get(key) is not None:
            rows[f"{prefix}{label} {span}"] = target_row(last[key], TARGETS["mem_32_vs_8"])
    return rows


def sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def rotated(names: list[str], rounds: int):
    """(round, name) for ``rounds`` rounds, the order rotated by one each round (no contender always goes first)."""
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            yield r, name


def timed(run, steps: int, device: str) -> tuple[float, float]:
    """Wall and process-CPU seconds of ``run(steps)``, after a garbage collection, synchronised on CUDA."""
    gc.collect()
    sync(device)
    start, start_cpu = time.perf_counter(), time.process_time()
    run(steps)
    sync(device)
    return time.perf_counter() - start, time.process_time() - start_cpu


def target_lines(results: dict, width: int) -> list[str]:
    lines = ["", "targets (reported, not asserted; wall / cpu):"]
    for key, value in results.items():
        cpu = f" / {value['cpu']:.3f}" if value.get("cpu") is not None else ""
        lines.append(f"  {key:<{width}} {value['measured']:.3f}{cpu}  (target <= {value['target']:.2f})  "
                     f"{'MET' if value['met'] else 'NOT MET'}")
    return lines


def finish(result: dict, text: str, json_path: str) -> None:
    """Print the report and write the result file (``--json``)."""
    print("\n" + text + f"\n\nwall time {result['wall_s']:.0f} s")
    if json_path:
        with open(json_path, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=2)


# ------------------------------------------------------------------------------------------------ text->video report


def report(result: dict) -> str:
    mem, cfg = result["memory"], result["config"]
    lines = [f"t2vz text->video benchmark: {cfg['size']}x{cfg['size']}, {cfg['steps']} DDIM steps, guidance "
             f"{cfg['guidance']}, UNet {cfg['model']['unet_channels']}, {cfg['device']} {cfg['dtype']}, "
             f"{cfg['threads']} threads (OMP_WAIT_POLICY={cfg['omp_wait_policy']}), best of {cfg['repeats']}"]
    if result["timing"]:
        lines += _table(f"{cfg['frames']} frames:", result["timing"])
    if result.get("long"):
        lines += _table(f"{cfg['long_frames']} frames, chunk {cfg['long_chunk']}:", result["long"])
    if mem:
        lines += ["", f"peak memory, ours, chunk {cfg['mem_chunk']}, {cfg['mem_steps']} steps, fresh process each, "
                  "frames discarded:", f"{'frames':>6} {'process peak MiB':>17} {'ratio':>6} {'job peak MiB':>13} "
                  f"{'job delta MiB':>14} {'ratio':>6}"]
        for m in mem:
            job = f"{m['job_peak_rss_mib']:>13.0f} {m['job_delta_mib']:>14.1f} {m['job_delta_ratio']:>6.2f}" \
                if m.get("job_peak_rss_mib") is not None else "-"
            cuda = f"  cuda peak {m['cuda_peak_alloc_mib']:.0f} MiB ({m['cuda_peak_alloc_ratio']:.2f})" \
                if "cuda_peak_alloc_mib" in m else ""
            lines.append(f"{m['frames']:>6} {m['process_peak_rss_mib']:>17.0f} {m['process_peak_rss_ratio']:>6.3f} "
                         f"{job}{cuda}")
    return "\n".join(lines + target_lines(result["targets"], 54))


def targets(rows: dict, mem: list[dict], long_rows: dict | None = None) -> dict:
    out = {}

    def add(label, measured, target, cpu=None):
        out[label] = target_row(measured, target, cpu)

    for table in (rows, long_rows or {}):
        if not table:
            continue
        names = list(table)
        # the default chunk (8) in each anchor layout; else the first of ours
        ours_names = [n for n in names if n.startswith("ours: chunk 8")]
        ours_names = ours_names or [n for n in names if n.startswith("ours")][:1]
        frames = names[0].split()[1]
        for ours_name in ours_names:
            ours = table[ours_name]
            add(f"{ours_name} / {frames} SD images", ours["vs_base"], TARGETS["ours_vs_base"], ours["cpu_vs_base"])
            if ours["vs_old"]:
                add(f"{ours_name} / {names[-1].split(': ', 1)[1]}", ours["vs_old"], TARGETS["ours_vs_old"],
                    ours["cpu_vs_old"])
    if mem:
        out.update(memory_targets("", mem))
    return out
