"""The pure parts of the commit guard that repairs faust's acked-offset bookkeeping."""

from streams.commit_guard import Progress, committable_run, tidy


def test_tidy_drops_committed_offsets_and_duplicates() -> None:
    assert tidy([1312, 1314, 1313, 1314, 1315, 1311], committed=1313) == [1313, 1314, 1315]
    assert tidy([5, 3, 3], committed=None) == [3, 5]
    assert tidy([], committed=7) == []


def test_only_a_run_starting_at_the_committed_offset_is_committable() -> None:
    assert committable_run([12, 10, 11, 14], committed=10) == [10, 11, 12]
    # faust 0.15.3 would commit 12 here and skip offset 10 for good
    assert committable_run([11, 12], committed=10) == []
    assert committable_run([11, 12, 11], committed=None) == [11, 12]
    assert committable_run([], committed=3) == []
    assert committable_run([0, 1], committed=0) == [0, 1]


def test_a_partition_stalls_when_records_wait_and_the_commit_does_not_move() -> None:
    progress = Progress()
    progress.observe({"a": 10, "b": 10, "c": 7, "d": None}, now=0.0)
    progress.observe({"a": 10, "b": 12, "c": 7, "d": None}, now=5.0)
    ends = {"a": 20, "b": 20, "c": 7, "d": 9}
    # b moved at 5 s; c has nothing waiting; d has never committed: it counts from offset 0
    assert progress.stalled(ends, now=9.0, after=8.0) == {"a": 10, "d": 0}
    assert progress.stalled(ends, now=13.0, after=8.0) == {"a": 10, "b": 12, "d": 0}
    assert progress.stalled(ends, now=7.0, after=8.0) == {}


def test_a_revoked_partition_is_forgotten() -> None:
    progress = Progress()
    progress.observe({"a": 1}, now=0.0)
    progress.observe({"b": 1}, now=1.0)
    assert set(progress.last) == {"b"}


def test_a_never_committed_empty_partition_is_not_stalled() -> None:
    progress = Progress()
    progress.observe({"e": None}, now=0.0)
    assert progress.stalled({"e": 0}, now=60.0, after=8.0) == {}
    assert progress.stalled({"e": None}, now=60.0, after=8.0) == {}
