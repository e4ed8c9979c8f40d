"""argparse types the commands share: numbers checked when parsed, so bad values get a one-line error."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any

# The longest shorter side a model is run at: 4096 px already needs several GB for the U-Nets here.
MAX_SIDE = 4096


def _checked(text: str, convert: type, what: str, ok: Callable[[Any], bool], rule: str) -> Any:
    """``text`` converted by ``convert``; an ArgumentTypeError naming ``what`` and the ``rule`` it breaks."""
    try:
        value = convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"{text} {rule}")
    return value


def model_side(text: str) -> int:
    """``--size``: the shorter side a model runs at, a whole number of pixels in 1..:data:`MAX_SIDE`."""
    return _checked(text, int, "a whole number of pixels", lambda v: 1 <= v <= MAX_SIDE,
                    f"px is outside 1..{MAX_SIDE} px")  # fmt: skip


def positive_int(text: str) -> int:
    """A whole number of at least 1 (``--limit``, counts)."""
    return _checked(text, int, "a whole number", lambda v: v >= 1, "is not a positive number")


def megapixels(text: str) -> float:
    """``--max-megapixels``: a finite positive number (NaN would disable every comparison with it)."""
    return _checked(text, float, "a number", lambda v: math.isfinite(v) and v > 0,
                    "is not a finite positive number of megapixels")  # fmt: skip
