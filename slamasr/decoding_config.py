"""Kept for imports of before the decoding package: :class:`DecodeConfig` lives in
:mod:`slamasr.decoding.config`."""

from slamasr.decoding.config import CHECKPOINT_RE, DecodeConfig

__all__ = ["CHECKPOINT_RE", "DecodeConfig"]
