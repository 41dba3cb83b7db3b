"""Camera motion against Blender renders (issue #12): per move, the error of the add-on's motion and of the best
single translation, over the pixels seen in both frames, in 8-bit levels (docs/benchmarks.md §4).

    .venv/bin/python bench/camera_oracle.py [--json out.json]

The scenes are those of tests/test_camera_oracle.py (tests/camera_scenes.py): 64 x 48 Cycles CPU renders, emission
only, of a textured ground plane (and a box on it for the depth path) along linear camera moves over frames 1-3;
frame 1 is warped onto frames 2 and 3. An accuracy measurement, not a timing: it does not depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

import camera_scenes as cs  # noqa: E402
import numpy as np  # noqa: E402

from blender_addon.scene_passes import camera_depth, camera_motion  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for move, end in [*cs.PLANE_MOVES.items(), ("orthographic pan, roll and zoom", cs.ORTHO_MOVE)]:
            scene, camera = cs.build(ortho=move.startswith("orthographic"))
            cs.animate(camera, end)
            fields, _ = camera_motion.camera_homographies(scene, cs.GROUND, 1, 3)
            frames = cs.render_frames(scene, os.path.join(tmp, move))
            rows += [{"scene": "plane", "move": move, "path": "homography", **row}
                     for row in cs.homography_errors(frames, fields["motion_homographies"])]
        for move, end in cs.DEPTH_MOVES.items():
            scene, camera = cs.build(box=True)
            cs.animate(camera, end)
            fields, _ = camera_depth.render_depth_motion(scene, 1, 3, os.path.join(tmp, move, "motion"), long_side=64)
            plane, _ = camera_motion.camera_homographies(scene, cs.GROUND, 1, 3)
            frames = cs.render_frames(scene, os.path.join(tmp, move, "frames"))
            rows += [{"scene": "plane + box", "move": move, "path": "depth", **row} for row in cs.flow_errors(
                frames, np.load(fields["motion_flow"]), np.load(fields["motion_occlusion"]),
                plane["motion_homographies"])]
    print("| scene | move | frame | motion (add-on) | ground-plane homography | best translation (shift px) | "
          "no motion | pixels seen in both |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        plane = f"{r['plane']:.2f}" if "plane" in r else "(the motion)"
        print(f"| {r['scene']} | {r['move']} | 1→{r['frame']} | **{r['motion']:.2f}** ({r['path']}) | {plane} | "
              f"{r['translation']:.2f} ({r['shift'][0]:+.2f}, {r['shift'][1]:+.2f}) | {r['still']:.2f} | "
              f"{r['seen']:.0%} |")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(rows, handle, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
