"""The add-on's side of the consistency report with a fake backend: the live thumbnail, the report kept on the
strip, the Consistency panel's figures, Open Report, and the baseline request."""

from __future__ import annotations

import base64
import io
import json
import os
from pathlib import Path

import pytest
from addon_helpers import (  # noqa: F401  # fixtures
    PACKAGE,
    FakeClient,
    addon,
    fake_client,
    generated_strips,
    prefs,
    scene,
    submodule,
)

bpy = pytest.importorskip("bpy")


def png_base64(width: int, height: int) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (10, 200, 30)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


class ReportingClient(FakeClient):
    """A fake backend that also sends frame thumbnails and, for a job with the report on, makes a real report."""

    def poll(self):
        protocol = submodule("backend.t2vz_backend.protocol")
        pending = list(self._pending)
        events = super().poll()
        out = []
        for event in events:
            if isinstance(event, protocol.Done):
                request = next(r for j, r in pending if j == event.job_id)
                if request.report:
                    out.append(self.report(event, request))
            out.append(event)
            if isinstance(event, protocol.FrameWritten):
                out.append(protocol.Preview(job_id=event.job_id, index=event.index, width=8, height=8,
                                            png_base64=png_base64(8, 8)))
        return out

    @staticmethod
    def report(done, request):
        """The backend's report of the frames, with the package's own copy of the backend (its event classes)."""
        import importlib

        quality = importlib.import_module(f"{PACKAGE}.backend.t2vz_backend.quality.consistency")
        files = quality.make_report(quality.ReportSpec(folder=done.output_dir, compare=request.report_compare))
        return submodule("backend.t2vz_backend.service.consistency").headline(
            files.document, path=files.json, image=files.png, page=files.html, job_id=done.job_id)


@pytest.fixture
def reporting_client(fake_client, monkeypatch):  # noqa: F811
    session = submodule("core.session")
    client = ReportingClient()
    monkeypatch.setattr(session, "_make_client", lambda config: client)
    return client


def test_the_runner_keeps_the_newest_thumbnail_and_the_panel_loads_it(scene, reporting_client):  # noqa: F811
    jobs, runner, thumbnails = submodule("jobs"), submodule("core.runner"), submodule("ui.thumbnails")
    job = jobs.launch(jobs.prepare(scene, scene.t2vz, prefs()))
    runner.pump(job)
    assert job.finished and job.preview.index == 2  # the newest of frames 0-2
    thumbnails.update(job)
    assert thumbnails.frame_of_live() == 2
    thumbnails.update(job)  # the same frame again: nothing to reload
    assert isinstance(thumbnails.live_icon(job), int)  # (0 in background mode, where previews are not drawn)
    job.preview = submodule("backend.t2vz_backend.protocol").Preview(job_id=job.job_id, index=3, width=8, height=8,
                                                                     png_base64=png_base64(8, 8))
    thumbnails.update(job)  # a newer frame replaces the thumbnail in place
    assert thumbnails.frame_of_live() == 3


def test_a_job_with_the_report_keeps_it_on_the_strip(scene, reporting_client):  # noqa: F811
    scene.t2vz.report = True
    assert bpy.ops.t2vz.generate() == {"FINISHED"}
    (strip,) = generated_strips(scene)
    request = reporting_client.requests[0]
    assert request.report and request.report_clip == "" and json.loads(strip["t2vz_request"])["report"]
    stored = json.loads(strip["t2vz_report"])
    assert stored["flow"] == "output" and os.path.isfile(stored["image"]) and stored["clip_consistency"] == -1
    headline = submodule("timeline.strip_report").headline(strip)
    assert headline == stored
    lines = submodule("ui.consistency")._lines(headline, json.loads(strip["t2vz_request"]), 1)
    assert lines[0].startswith("Warp error") and any("CLIP: not computed" in line for line in lines)
    scene.sequence_editor.active_strip = strip
    assert bpy.ops.t2vz.open_report(strip=strip.name) == {"FINISHED"}
    assert any(image.filepath == stored["image"] for image in bpy.data.images)  # headless: loaded, not shown


def test_a_report_made_later_in_the_frames_folder_is_found(scene, reporting_client):  # noqa: F811
    assert bpy.ops.t2vz.generate() == {"FINISHED"}
    (strip,) = generated_strips(scene)
    strip_report = submodule("timeline.strip_report")
    assert strip_report.headline(strip) is None
    with pytest.raises(RuntimeError, match="has no consistency report"):
        bpy.ops.t2vz.open_report(strip=strip.name)
    from t2vz_backend.cli import main

    assert main(["report", bpy.path.abspath(strip.directory)]) == 0  # the CLI on the strip's folder
    found = strip_report.headline(strip)
    assert found is not None and Path(found["image"]).name == "report.png"


@pytest.fixture
def clip_preference(addon):  # noqa: F811
    prefs().report_clip = "some-org/some-clip"
    yield
    prefs().report_clip = ""


def test_the_baseline_renders_the_strips_job_as_stills_and_compares(scene, reporting_client,  # noqa: F811
                                                                      clip_preference):
    assert bpy.ops.t2vz.generate() == {"FINISHED"}
    (strip,) = generated_strips(scene)
    assert bpy.ops.t2vz.baseline(strip=strip.name) == {"FINISHED"}
    original, request = reporting_client.requests
    assert request.baseline and request.report and request.report_clip == "some-org/some-clip"
    assert os.path.samefile(request.report_compare, bpy.path.abspath(strip.directory))
    assert request.seed == original.seed and request.prompt == original.prompt
    assert request.output_dir != original.output_dir
    stills = next(s for s in generated_strips(scene) if s != strip)
    assert stills.name.endswith("stills")
    headline = submodule("timeline.strip_report").headline(stills)
    assert headline["compared_warp_error"] >= 0
    with pytest.raises(RuntimeError, match="is a baseline already"):  # a baseline of a baseline makes no sense
        bpy.ops.t2vz.baseline(strip=stills.name)
