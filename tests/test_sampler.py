"""The step-major call layout: which rows share a UNet call, for both anchor layouts."""

from __future__ import annotations

import pytest

from t2vz_backend.sampling.sampler import chunks, passes_per_step


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
