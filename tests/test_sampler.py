"""The step-major call layout: which rows share a UNet call, for both anchor layouts."""

from __future__ import annotations

import pytest

from t2vz_backend.sampling.sampler import chunks, passes_per_step, single_run_rows


def rows(slices) -> list[list[int]]:
    return [list(range(s.start, s.stop)) for s in slices]


def test_exact_anchor_runs_alone_then_chunks_of_the_other_frames():
    assert rows(chunks(8, 8)) == [[0], [1, 2, 3, 4, 5, 6, 7]]
    assert rows(chunks(8, 3)) == [[0], [1, 2, 3], [4, 5, 6], [7]]
    assert rows(chunks(1, 8)) == [[0]]
    assert passes_per_step(8, 8) == 2


def test_shared_anchor_rides_in_the_first_chunk_and_no_call_exceeds_the_chunk():
    assert rows(chunks(8, 8, exact_anchor=False)) == [list(range(8))]
    assert rows(chunks(8, 3, exact_anchor=False)) == [[0, 1, 2], [3, 4, 5], [6, 7]]
    assert rows(chunks(2, 8, exact_anchor=False)) == [[0, 1]]
    assert rows(chunks(5, 1, exact_anchor=False)) == rows(chunks(5, 1))  # chunk 1: the same layout
    assert passes_per_step(8, 8, exact_anchor=False) == 1


@pytest.mark.parametrize("exact", [True, False])
@pytest.mark.parametrize("count,size", [(1, 1), (7, 2), (24, 8), (9, 4)])
def test_every_row_is_covered_once(count, size, exact):
    covered = [r for part in rows(chunks(count, size, exact)) for r in part]
    assert covered == list(range(count))
    assert all(len(part) <= size for part in rows(chunks(count, size, exact)))


@pytest.mark.parametrize("exact", [True, False])
@pytest.mark.parametrize("count,size", [(1, 8), (6, 4), (10, 8), (17, 8), (24, 8), (5, 2)])
def test_balanced_chunks_are_as_many_calls_of_equal_size(count, size, exact):
    plain, balanced = chunks(count, size, exact), chunks(count, size, exact, balanced=True)
    assert [r for part in rows(balanced) for r in part] == list(range(count))
    assert len(balanced) == len(plain)
    calls = rows(balanced)[1:] if exact else rows(balanced)
    sizes = [len(part) for part in calls]
    assert not sizes or (max(sizes) - min(sizes) <= 1 and max(sizes) <= size and sizes == sorted(sizes, reverse=True))


def test_a_sub_range_pads_only_calls_that_then_match_the_single_run():
    # shared layout, chunk 4, a 9-frame job: single-run calls hold frames 0-3, 4-7, 8
    def pads(frames, exact=False, job=9):
        return [single_run_rows(part, frames, 4, exact, job) for part in chunks(len(frames), 4, exact)]

    assert pads(list(range(9))) == [4, 4, 1]  # the single run itself: nothing to pad
    assert pads([0, 1, 2, 3, 4]) == [4, 4]  # frames 0-4 (farm range): frame 4 alone is padded to 4-7's shape
    assert pads([0, 5, 6, 7, 8]) == [4, 1]  # 5-8: the anchor stands in for frame 4
    assert pads([0, 5, 6]) == [4]  # a short range: its one call padded to 4-7's shape
    assert pads([0, 2, 3]) == [3]  # off the grid: frames would not sit at their rows, so no padding
    assert pads([0, 1, 2, 3, 4], job=0) == [4, 1]  # job size unknown: never padded
    assert pads([0]) == [4] and pads([0], job=2) == [2]  # the anchor alone heads the first chunk's call
    assert pads([0], exact=True) == [1]
    # exact layout, chunk 4: single-run calls hold 0 | 1-4 | 5-8; grid ranges need no padding
    assert pads([0, 5, 6, 7, 8], exact=True) == [1, 4] and pads([0, 1, 2, 3, 4], exact=True) == [1, 4]
    assert pads([0, 1, 2], exact=True) == [1, 4]
