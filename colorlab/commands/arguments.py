"""argparse types the commands share: numbers checked when parsed, so bad values get a one-line error."""

from __future__ import annotations

import argparse
import math

# The longest shorter side a model is run at: 4096 px already needs several GB for the U-Nets here.
MAX_SIDE = 4096


def model_side(text: str) -> int:
    """``--size``: the shorter side a model runs at, a whole number of pixels in 1..:data:`MAX_SIDE`."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of pixels") from None
    if not 1 <= value <= MAX_SIDE:
        raise argparse.ArgumentTypeError(f"{value} px is outside 1..{MAX_SIDE} px")
    return value


def positive_int(text: str) -> int:
    """A whole number of at least 1 (``--limit``, counts)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    return value


def megapixels(text: str) -> float:
    """``--max-megapixels``: a finite positive number (NaN would disable every comparison with it)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not a finite positive number of megapixels")
    return value
