"""The output folder and the job's sources (service/outputs.check_output): a folder source forbids writing inside
it, a single-file source (a movie) only forbids writing over that file, never its whole folder."""

from __future__ import annotations

import pytest

from t2vz_backend.errors import OutputError
from t2vz_backend.protocol import ControlSpec, ControlVideoRequest, EditVideoRequest, TextToVideoRequest
from t2vz_backend.service.outputs import check_output, source_folders, source_paths


@pytest.fixture
def movie(tmp_path):
    path = tmp_path / "project" / "clip.mp4"
    path.parent.mkdir()
    path.write_bytes(b"not decoded here")
    return path


def test_a_job_folder_beside_a_movie_source_is_allowed_without_overwrite(movie):
    request = EditVideoRequest(output_dir=str(movie.parent / "t2vz" / "job" / "frames"), input=str(movie),
                               instruction="snow")
    check_output(request)  # the .blend file's own folder holds the movie and the job folders
    assert source_folders(request) == [] and source_paths(request) == [("input", str(movie.resolve()))]


def test_an_output_that_is_or_holds_the_movie_is_refused_even_with_overwrite(movie):
    for output in (movie.parent, movie):
        request = EditVideoRequest(output_dir=str(output), input=str(movie), instruction="snow", overwrite=True)
        with pytest.raises(OutputError, match="holds the source file") as info:
            check_output(request)
        assert info.value.field == "output_dir"


@pytest.mark.parametrize("overwrite", [False, True])
def test_an_output_inside_a_folder_source_is_refused_whatever_the_flags(tmp_path, overwrite):
    frames = tmp_path / "frames"
    frames.mkdir()
    request = ControlVideoRequest(output_dir=str(frames / "out"), controls=(ControlSpec("canny", str(frames)),),
                                  overwrite=overwrite)
    with pytest.raises(OutputError, match="inside the folder of the source frames") as info:
        check_output(request)
    assert "controls[0].path" in info.value.message


def test_a_mask_folder_is_a_folder_source(tmp_path):
    masks = tmp_path / "masks"
    masks.mkdir()
    request = TextToVideoRequest(output_dir=str(masks / "o"), mask_dir=str(masks), smooth_bg=True)
    assert source_folders(request) == [("mask_dir", str(masks.resolve()))]
    with pytest.raises(OutputError):
        check_output(request)


@pytest.mark.parametrize("overwrite", [False, True])
def test_camera_motion_sources_are_sources_whatever_the_flags(tmp_path, overwrite):
    """A folder of displacement maps is footage too; a .npy stack only forbids writing over itself."""
    flows = tmp_path / "flows"
    flows.mkdir()
    request = TextToVideoRequest(output_dir=str(flows / "out"), motion_flow=str(flows), overwrite=overwrite)
    with pytest.raises(OutputError) as info:
        check_output(request)
    assert "motion_flow" in info.value.message
    stack = tmp_path / "occlusion.npy"
    stack.write_bytes(b"not read here")
    beside = TextToVideoRequest(output_dir=str(tmp_path / "job"), motion_flow=str(flows), motion_occlusion=str(stack),
                                overwrite=overwrite)
    check_output(beside)
    assert ("motion_occlusion", str(stack.resolve())) in source_paths(beside)
