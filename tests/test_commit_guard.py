"""The pure parts of the commit guard that repairs faust's acked-offset bookkeeping."""

from streams.commit_guard import holes, tidy


def test_tidy_drops_committed_offsets_and_duplicates() -> None:
    assert tidy([1312, 1314, 1313, 1314, 1315, 1311], committed=1313) == [1313, 1314, 1315]
    assert tidy([5, 3, 3], committed=None) == [3, 5]
    assert tidy([], committed=7) == []


def test_a_hole_is_an_unacked_head_with_later_offsets_acked() -> None:
    acked = {"a": [11, 12], "b": [10, 11], "c": [], "d": [4]}
    committed = {"a": 10, "b": 10, "c": 3, "d": None}
    assert holes(acked, committed) == {"a": 10}
