"""Cut ids are data, never paths: a safe file name for an id, and a check for text formats.

A manifest may come from anywhere; its ids can hold ``..``, ``/``, an absolute path,
newlines or tabs. Two rules keep such ids harmless:

- Where an id would name a file (the encoder cache's ``.npy`` arrays), the file is named by
  ``storage_key(cut_id)``: the id's safe characters (for reading) plus a hash of the whole
  id (for uniqueness), e.g. ``1089-134686-0000`` -> ``1089-134686-0000_3f2a9c0d51b7e6a4``,
  ``../../x`` -> ``_____x_90e1...``. It never holds a separator or ``..`` and never starts
  with ``.``, so it stays inside the directory it is written to.
- Where an id is written as one field of a text line (``recogs-*.txt``: ``<cut_id>:\\t...``,
  ``wav.scp``-style lists), ``check_cut_id`` rejects ids that would break the line
  (empty, whitespace, control characters).
"""

from __future__ import annotations

import hashlib
import re

_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9_-]")
_READABLE_LEN = 64  # characters of the id kept in its storage key
_HASH_LEN = 16  # hex digits of sha256 (64 bits)


class UnsafeIdError(ValueError):
    """A cut id cannot be written where it was about to be written."""


def storage_key(cut_id: str) -> str:
    """A file name for ``cut_id``: safe characters of the id, then 16 hex digits of its hash.

    Distinct ids give distinct keys (up to a 64-bit hash collision), also on case-insensitive
    file systems (the hash differs), and no key is a path: only ``[A-Za-z0-9_-]``.

    Args:
        cut_id: Any string.

    Returns:
        The key, at most 81 characters.
    """
    readable = _UNSAFE_CHARS.sub("_", cut_id)[:_READABLE_LEN]
    digest = hashlib.sha256(cut_id.encode("utf-8")).hexdigest()[:_HASH_LEN]
    return f"{readable}_{digest}"


def id_problem(cut_id: str) -> str | None:
    """Why ``cut_id`` cannot be one field of a text line, or None when it can."""
    if not cut_id:
        return "it is empty"
    if any(ch.isspace() for ch in cut_id):
        return "it contains whitespace"
    if any(not ch.isprintable() for ch in cut_id):
        return "it contains control characters"
    return None


def check_cut_id(cut_id: str, where: str) -> str:
    """Return ``cut_id`` when it is usable as one field of a text line; else raise.

    Args:
        cut_id: The id.
        where: What holds it (a manifest path), named in the error.

    Raises:
        UnsafeIdError: the id is empty or holds whitespace/control characters.
    """
    problem = id_problem(cut_id)
    if problem:
        raise UnsafeIdError(
            f"cut id {cut_id!r} in {where}: {problem}, so it cannot be written as one field "
            "of a text line; rename the cut (ids are names, not text)"
        )
    return cut_id
