"""Cut ids are data: storage keys are plain file names; text-breaking ids are named."""

from __future__ import annotations

import re

import pytest

from slamasr.data.ids import UnsafeIdError, check_cut_id, id_problem, storage_key

HOSTILE_IDS = ["../../../x", "/etc/evil", "a/b/c", "..", ".", ".hidden", "a\\b", "C:\\x", ""]


@pytest.mark.parametrize("cut_id", HOSTILE_IDS + ["1089-134686-0000", "espeak-train-s1-000001"])
def test_storage_key_is_a_plain_file_name(cut_id: str) -> None:
    key = storage_key(cut_id)
    assert re.fullmatch(r"[A-Za-z0-9_-]+", key), key
    assert not key.startswith(".") and len(key) <= 81


def test_storage_keys_are_distinct_and_readable() -> None:
    ids = HOSTILE_IDS + ["a_b_c", "A/B/C", "x", "X", "a.b", "a_b"]
    assert len({storage_key(i) for i in ids}) == len(ids)
    assert len({storage_key(i).casefold() for i in ids}) == len(ids)  # case-insensitive FS
    assert storage_key("1089-134686-0000").startswith("1089-134686-0000_")


@pytest.mark.parametrize("cut_id", ["", "a b", "a\tb", "a\nb:\thyp=['X']", "a\x00b"])
def test_ids_that_break_a_text_line_are_rejected_by_name(cut_id: str) -> None:
    assert id_problem(cut_id)
    with pytest.raises(UnsafeIdError, match="in m.jsonl.gz"):
        check_cut_id(cut_id, "m.jsonl.gz")


def test_path_like_ids_are_fine_in_text_lines() -> None:
    for cut_id in ("../../../x", "/etc/evil", "1089-134686-0000"):
        assert check_cut_id(cut_id, "m") == cut_id
