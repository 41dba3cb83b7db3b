"""The add-on side of farms (issue 15), in the bpy module with a real worker and the tiny model.

``blender -c t2vz generate --job-range S-E --frame-range A-B --output-dir DIR`` is what each Flamenco task runs:
ranges of one job rendered apart into one shared folder must give the frames of the whole job, and a range run
again (a retried task on another worker) must leave the frames already there as they are. ``assemble`` is the
job's last task. The Farm preferences and the Render on Farm toggle are checked to reach the request.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from addon_helpers import (  # noqa: F401  # fixtures
    addon,
    generated_strips,
    prefs,
    scene,
    strip_start,
    submodule,
    worker_has_torch,
)

bpy = pytest.importorskip("bpy")
if not worker_has_torch():
    pytest.skip("the worker Python has no torch", allow_module_level=True)


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("frame_*.png"))}


def test_ranges_into_a_shared_folder_equal_the_whole_job(scene, tmp_path, capsys):  # noqa: F811
    cli = submodule("cli")
    scene.t2vz.chunk_size = 2  # ranges start on its grid (job frames 0, 3): bit-identical to the whole job
    python = ["--python", prefs().python_path]
    whole = tmp_path / "whole"
    assert cli.execute(["generate", "--job-range", "1-5", "--output-dir", str(whole), *python]) == 0
    shared = tmp_path / "shared"
    for part in ("4-5", "1-3"):  # in any order, as farm workers finish
        assert cli.execute(["generate", "--job-range", "1-5", "--frame-range", part, "--output-dir", str(shared),
                            *python]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "Time: " in out and "T2V-Zero frame 5 (2/2)" in out  # one progress line per frame (Flamenco counts them)
    assert f"Saved: '{shared / 'frame_000002.png'}'" in out  # the task's last frame, for Flamenco's thumbnail
    expected = digests(whole)
    assert len(expected) == 5 and digests(shared) == expected
    strips = {s.name: s for s in generated_strips(scene)}
    assert sorted(strip_start(s) for s in strips.values()) == [1, 1, 4]  # each range at its own frames
    before = {p.name: p.stat().st_mtime_ns for p in shared.glob("frame_*.png")}
    assert cli.execute(["generate", "--job-range", "1-5", "--frame-range", "4-5", "--output-dir", str(shared),
                        *python]) == 0  # the same range again, e.g. a retried task
    assert digests(shared) == expected
    assert all(shared.joinpath(n).stat().st_mtime_ns == t for n, t in before.items() if n < "frame_000003.png")
    assert not [p for p in shared.iterdir() if p.name.startswith(".partial")]
    assert cli.execute(["assemble", "--output-dir", str(shared), "--job-range", "1-5", *python]) == 0
    assert (shared / "preview.mp4").is_file()
    assert cli.execute(["assemble", "--output-dir", str(shared), "--job-range", "1-7", *python]) == 1
    assert "2 of 7 frames are missing" in capsys.readouterr().err


def test_render_on_farm_sends_the_preferences_farm_spec(scene, monkeypatch):  # noqa: F811
    jobs = submodule("jobs")
    p = prefs()
    p.farm_address, p.farm_ranges, p.farm_shared_storage = "auto", 3, True
    seen = {}

    def fake_launch(plan):
        seen["farm"] = plan.farm
        raise submodule("core.errors").T2VZAddonError("stop here", "")

    monkeypatch.setattr(jobs, "launch", fake_launch)
    scene.t2vz.render_on_farm = True
    with pytest.raises(RuntimeError, match="stop here"):  # the operator reports the error
        bpy.ops.t2vz.generate()
    farm = seen["farm"]
    assert (farm.address, farm.ranges, farm.shared_storage, farm.retries) == ("auto", 3, True, 3)
    scene.t2vz.render_on_farm = False
    with pytest.raises(RuntimeError, match="stop here"):
        bpy.ops.t2vz.generate()
    assert seen["farm"] is None
