"""Reading source frames: folders (natural order), single images, movies (range, fps), errors that name the file."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from PIL import Image

from t2vz_backend.errors import InputError, InvalidRequestError
from t2vz_backend.media.reader import (
    count_frames,
    fit_size,
    natural_key,
    read_frames,
    read_image,
    resample_indices,
    resize_frames,
    to_rgb8,
)


def _frame(value: int, size: tuple[int, int] = (32, 24)) -> np.ndarray:
    """A flat grey frame (w, h); the grey level identifies the frame after lossy coding."""
    return np.full((size[1], size[0], 3), value, dtype=np.uint8)


def _folder(tmp_path, names, size=(32, 24)):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, name in enumerate(names):
        Image.fromarray(_frame(10 * i, size)).save(folder / name)
    return folder


def _movie(path, n: int, fps: int = 10, size=(32, 24)):
    """A tiny lossless-ish MPEG-4 movie whose frame k has grey level 20 * k."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        stream.qscale = 1
        for k in range(n):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(_frame(20 * k, size), format="rgb24")))
        container.mux(stream.encode())
    return path


def _level(frame: np.ndarray) -> int:
    return round(float(frame.mean()) / 20)


def test_natural_sort_orders_numbers_by_value(tmp_path):
    names = ["frame_10.png", "frame_2.png", "frame_1.png", "Frame_3.png"]
    assert sorted(names, key=natural_key) == ["frame_1.png", "frame_2.png", "Frame_3.png", "frame_10.png"]
    folder = _folder(tmp_path, ["f_10.png", "f_2.png", "f_1.png"])  # grey 0, 10, 20 in that creation order
    seq = read_frames(folder)
    assert [int(f[0, 0, 0]) for f in seq] == [20, 10, 0]  # f_1, f_2, f_10
    assert seq.size == (32, 24) and seq.fps is None and len(seq) == 3


def test_folder_range_and_hidden_files_ignored(tmp_path):
    folder = _folder(tmp_path, [f"f_{i}.png" for i in range(5)])
    (folder / ".thumbs.png").write_bytes(b"junk")
    (folder / "notes.txt").write_text("not a frame")
    seq = read_frames(folder, start=1, count=3)
    assert seq.indices == [1, 2, 3] and seq.total == 5
    assert [int(f[0, 0, 0]) for f in seq] == [10, 20, 30]
    assert count_frames(folder) == 5


def test_folder_fps_needs_source_fps(tmp_path):
    folder = _folder(tmp_path, [f"f_{i}.png" for i in range(6)])
    with pytest.raises(InputError, match="source_fps"):
        read_frames(folder, fps=4)
    seq = read_frames(folder, fps=4, source_fps=8)
    assert seq.indices == [0, 2, 4] and seq.fps == 4


def test_single_image_is_one_frame_and_rgba_gray_become_rgb(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 128
    Image.fromarray(rgba).save(tmp_path / "a.png")
    seq = read_frames(tmp_path / "a.png")
    assert len(seq) == 1 and seq[0].shape == (8, 8, 3) and seq[0].dtype == np.uint8
    assert abs(int(seq[0][0, 0, 0]) - 100) <= 1 and seq[0][0, 0, 1] == 0  # alpha composited over black
    Image.fromarray(np.full((4, 6), 77, np.uint8)).save(tmp_path / "g.png")
    assert read_image(tmp_path / "g.png").shape == (4, 6, 3)
    sixteen = np.full((4, 4), 65535, np.uint16)
    assert to_rgb8(sixteen)[0, 0].tolist() == [255, 255, 255]


def test_movie_range_and_fps_resampling(tmp_path):
    movie = _movie(tmp_path / "clip.mp4", 10, fps=10)
    assert count_frames(movie) == 10
    seq = read_frames(movie, start=3, count=4)
    assert seq.indices == [3, 4, 5, 6] and seq.fps == 10
    assert [_level(f) for f in seq] == [3, 4, 5, 6]
    half = read_frames(movie, fps=5)  # every second frame, nearest in time
    assert half.indices == [0, 2, 4, 6, 8] and [_level(f) for f in half] == [0, 2, 4, 6, 8]
    assert count_frames(movie, fps=5) == 5
    double = read_frames(movie, fps=20, start=0, count=4)
    assert double.indices == [0, 1, 1, 2]  # t = 0, .05, .1, .15 s -> nearest source frames (round half up)
    assert double[1] is not double[2]  # repeats are separate arrays
    sized = read_frames(movie, count=1, size=(16, 12))
    assert sized[0].shape == (12, 16, 3)


def test_resample_indices_stays_inside_source():
    assert resample_indices(3, 30, 24) == [0, 1, 2]  # output times 0, 1/24, 2/24 s all lie inside 0.1 s
    assert resample_indices(4, 24, 30) == [0, 1, 2, 2, 3]
    assert max(resample_indices(7, Fraction(30000, 1001), 60)) == 6


def test_range_outside_source_says_how_many_frames(tmp_path):
    movie = _movie(tmp_path / "clip.mp4", 5)
    with pytest.raises(InputError, match=r"clip\.mp4, which has 5 frames"):
        read_frames(movie, start=3, count=4)
    folder = _folder(tmp_path, ["a.png", "b.png"])
    with pytest.raises(InputError, match="has 2 frames"):
        read_frames(folder, start=2)
    with pytest.raises(InvalidRequestError):
        read_frames(folder, start=-1)


def test_missing_path_and_empty_folder(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_frames(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no images in folder") as info:
        read_frames(tmp_path / "empty")
    assert info.value.hint


def test_corrupt_image_is_named(tmp_path):
    folder = _folder(tmp_path, ["f_1.png", "f_2.png"])
    (folder / "f_3.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    with pytest.raises(InputError, match=r"f_3\.png") as info:
        read_frames(folder)
    assert "corrupt" in info.value.message and info.value.hint


def test_mixed_sizes_refused_naming_file_and_sizes(tmp_path):
    folder = _folder(tmp_path, ["f_1.png", "f_2.png"])
    Image.fromarray(_frame(0, (40, 24))).save(folder / "f_3.png")
    with pytest.raises(InputError, match=r"f_3\.png is 40x24 but .*f_1\.png is 32x24"):
        read_frames(folder)


def test_mixed_image_types_refused(tmp_path):
    folder = _folder(tmp_path, ["f_1.png"])
    Image.fromarray(_frame(0)).save(folder / "f_2.jpg")
    with pytest.raises(InputError, match="mixes image types"):
        read_frames(folder)


def test_movie_without_video_stream(tmp_path):
    import av

    path = tmp_path / "sound.wav"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        container.mux(stream.encode(frame))
        container.mux(stream.encode())
    with pytest.raises(InputError, match=r"sound\.wav has no video stream"):
        read_frames(path)


def test_not_a_movie_is_named(tmp_path):
    path = tmp_path / "readme.txt"
    path.write_text("hello")
    with pytest.raises(InputError, match=r"readme\.txt"):
        count_frames(path)


def test_exr_is_read_as_float_then_8bit(tmp_path):
    import os

    os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")
    import cv2

    if os.environ["OPENCV_IO_ENABLE_OPENEXR"] != "1":
        pytest.skip("EXR disabled in this environment")
    data = np.full((4, 4, 3), 0.5, np.float32)
    cv2.imwrite(str(tmp_path / "a.exr"), data)
    assert read_image(tmp_path / "a.exr")[0, 0].tolist() == [128, 128, 128]


@pytest.mark.parametrize(
    ("size", "kwargs", "expected"),
    [
        ((512, 512), {}, (512, 512)),
        ((1920, 1080), {"long_side": 512}, (512, 288)),
        ((1080, 1920), {"long_side": 512}, (288, 512)),
        ((1000, 750), {"long_side": 512, "multiple": 64}, (512, 384)),
        ((33, 17), {}, (32, 16)),
        ((3, 1000), {"long_side": 64}, (8, 64)),  # never below one multiple
        ((100, 37), {"multiple": 8}, (104, 40)),  # 12.5 multiples rounds half up
    ],
)
def test_fit_size(size, kwargs, expected):
    w, h = fit_size(*size, **kwargs)
    assert (w, h) == expected
    assert w % kwargs.get("multiple", 8) == 0 and h % kwargs.get("multiple", 8) == 0


def test_fit_size_rejects_bad_values():
    with pytest.raises(InvalidRequestError):
        fit_size(0, 10)
    with pytest.raises(InvalidRequestError):
        fit_size(10, 10, long_side=4)


def test_resize_frames_keeps_frames_of_the_right_size():
    frame = _frame(100, (32, 24))
    same, = resize_frames([frame], (32, 24))
    assert same is frame
    small, = resize_frames([frame], (16, 8))
    assert small.shape == (8, 16, 3) and small.dtype == np.uint8 and int(small[4, 8, 0]) == 100
