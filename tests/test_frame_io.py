"""Writing outputs: global zero-padded names, atomic writes, MP4/GIF previews."""

from __future__ import annotations

import errno
import os

import numpy as np
import pytest
from PIL import Image

from t2vz_backend.errors import OutputError
from t2vz_backend.media.writer import FrameWriter, frame_name, write_preview


def _frames(n: int, size=(34, 26)) -> list[np.ndarray]:
    """Distinct frames (GIF merges identical neighbours), odd-free sizes unless asked."""
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8) for _ in range(n)]


def test_names_are_zero_padded_and_global(tmp_path):
    writer = FrameWriter(tmp_path, total_frames=3, first_index=40)
    paths = [writer.write(frame) for frame in _frames(3)]
    assert [os.path.basename(p) for p in paths] == ["frame_000040.png", "frame_000041.png", "frame_000042.png"]
    assert sorted(os.listdir(tmp_path)) == ["frame_000040.png", "frame_000041.png", "frame_000042.png"]
    # a sub-range render names its frames as the full run would
    full = FrameWriter(tmp_path / "full", total_frames=43)
    assert os.path.basename(full.path_for(41)) == os.path.basename(paths[1])
    assert frame_name(1_234_567, 7) == "frame_1234567.png"
    assert FrameWriter(tmp_path, total_frames=2_000_000).digits == 7
    with pytest.raises(ValueError):
        FrameWriter(tmp_path, total_frames=100_000, digits=4)


def test_frames_round_trip_and_explicit_index(tmp_path):
    frame = _frames(1)[0]
    writer = FrameWriter(tmp_path, total_frames=10)
    path = writer.write(frame, index=7)
    assert path.endswith("frame_000007.png")
    assert np.array_equal(np.asarray(Image.open(path)), frame)
    floats = writer.write(np.full((4, 4, 3), 0.5, np.float32), index=8)
    assert np.asarray(Image.open(floats))[0, 0].tolist() == [128, 128, 128]
    with pytest.raises(ValueError):
        writer.write(frame, index=10)


def test_write_is_atomic_and_leaves_no_temp_files(tmp_path, monkeypatch):
    writer = FrameWriter(tmp_path, total_frames=2)
    writer.write(_frames(1)[0])
    assert os.listdir(tmp_path) == ["frame_000000.png"]

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OutputError, match=r"frame_000001\.png"):
        writer.write(_frames(1)[0])
    assert os.listdir(tmp_path) == ["frame_000000.png"]  # no temp file, no partial frame


def test_gif_preview_reads_back(tmp_path):
    frames = _frames(4)
    path = write_preview(frames, tmp_path / "preview.gif", fps=8)
    with Image.open(path) as gif:
        assert gif.n_frames == 4 and gif.size == (34, 26)
        assert abs(gif.info["duration"] - 125) <= 10  # GIF stores hundredths of a second


def test_mp4_preview_from_paths_reads_back(tmp_path):
    import av

    writer = FrameWriter(tmp_path / "frames", total_frames=5)
    (tmp_path / "frames").mkdir()
    paths = [writer.write(frame) for frame in _frames(5, size=(33, 25))]  # odd size: padded to even
    path = write_preview(paths, tmp_path / "preview.mp4", fps=8)
    with av.open(path) as container:
        stream = container.streams.video[0]
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        assert stream.codec_context.pix_fmt == "yuv420p" and float(stream.average_rate) == 8
    assert len(decoded) == 5 and decoded[0].shape == (26, 34, 3)
    assert sorted(os.listdir(tmp_path)) == ["frames", "preview.mp4"]  # no temp file left


def test_preview_errors(tmp_path):
    with pytest.raises(OutputError, match="unknown type"):
        write_preview(_frames(2), tmp_path / "preview.avi2", fps=8)
    with pytest.raises(OutputError, match="does not exist"):
        write_preview(_frames(2), tmp_path / "missing" / "p.gif", fps=8)
    with pytest.raises(OutputError, match="frame 1"):
        write_preview([_frames(1)[0], _frames(1, size=(8, 8))[0]], tmp_path / "p.gif", fps=8)


@pytest.mark.parametrize(("code", "words"), [
    (errno.ENOSPC, "disk is full"), (errno.EFBIG, "file size limit"), (errno.EROFS, "read-only"),
    (errno.EACCES, "permission denied"), (errno.EDQUOT, "quota"), (errno.EIO, "disk space")])
def test_every_write_failure_is_an_output_error_with_a_hint_and_leaves_nothing(tmp_path, code, words):
    from t2vz_backend.media.atomic import atomic_write, write_bytes

    write_bytes(tmp_path / "t2vz.json", b"old")

    def fails(temp):
        with open(temp, "wb") as handle:
            handle.write(b"half")
        raise OSError(code, os.strerror(code))

    with pytest.raises(OutputError) as info:
        atomic_write(tmp_path / "t2vz.json", fails)
    assert str(tmp_path / "t2vz.json") in info.value.message and words in info.value.hint
    assert os.listdir(tmp_path) == ["t2vz.json"] and (tmp_path / "t2vz.json").read_bytes() == b"old"
