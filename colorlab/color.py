"""Colour maths: the one place where RGB, CIE Lab and the model-space normalisation meet.

Ranges used everywhere in colorlab:

* ``rgb``: float sRGB in ``[0, 1]``, shape ``(*, 3, H, W)``; ``uint8`` only at the I/O edges.
* ``lab``: CIE L*a*b* (D65) with ``L`` in ``[0, 100]`` and ``a, b`` roughly in ``[-110, 110]`` for sRGB.
* Normalised model space (Zhang et al. convention): ``L_n = L / 50 - 1`` in ``[-1, 1]`` and
  ``ab_n = ab / 110`` in about ``[-1, 1]``; this is what every approach reads and predicts.

All functions are batched, differentiable and run on whichever device their input lives on.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Literal

import torch
from kornia import color as kornia_color
from kornia.color import lab_to_rgb as _kornia_lab_to_rgb
from kornia.color import rgb_to_lab as _kornia_rgb_to_lab
from kornia.color import rgb_to_linear_rgb

L_CENTER = 50.0
L_SCALE = 50.0
AB_SCALE = 110.0


def _check_channels(x: torch.Tensor, channels: int, name: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() < 3 or x.shape[-3] != channels:
        raise ValueError(f"{name} must have shape (*, {channels}, H, W), got {tuple(x.shape)}")


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB ``(*, 3, H, W)`` in [0, 1] -> CIE Lab ``(*, 3, H, W)`` with L in [0, 100]."""
    _check_channels(rgb, 3, "rgb")
    return _kornia_rgb_to_lab(rgb.clamp(0.0, 1.0))


def lab_to_rgb(lab: torch.Tensor, clip: bool = True) -> torch.Tensor:
    """CIE Lab ``(*, 3, H, W)`` -> sRGB in [0, 1] (clipped to the gamut when ``clip``)."""
    _check_channels(lab, 3, "lab")
    return _kornia_lab_to_rgb(lab, clip=clip)


def normalize_l(L: torch.Tensor) -> torch.Tensor:
    """L in [0, 100] -> [-1, 1]."""
    return L / L_SCALE - L_CENTER / L_SCALE


def denormalize_l(L_n: torch.Tensor) -> torch.Tensor:
    """L in [-1, 1] -> [0, 100]."""
    return (L_n + L_CENTER / L_SCALE) * L_SCALE


def normalize_ab(ab: torch.Tensor) -> torch.Tensor:
    """ab in Lab units -> ab / 110 (about [-1, 1])."""
    return ab / AB_SCALE


def denormalize_ab(ab_n: torch.Tensor) -> torch.Tensor:
    """ab / 110 -> ab in Lab units."""
    return ab_n * AB_SCALE


def rgb_to_lab_normalized(rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """sRGB in [0, 1] -> (L_n ``(*, 1, H, W)`` in [-1, 1], ab_n ``(*, 2, H, W)``)."""
    lab = rgb_to_lab(rgb)
    return normalize_l(lab[..., :1, :, :]), normalize_ab(lab[..., 1:, :, :])


def lab_normalized_to_rgb(L_n: torch.Tensor, ab_n: torch.Tensor, clip: bool = True) -> torch.Tensor:
    """(L_n, ab_n) in model space -> sRGB in [0, 1]; ``ab_n`` is resized to ``L_n`` if needed."""
    _check_channels(L_n, 1, "L")
    _check_channels(ab_n, 2, "ab")
    if ab_n.shape[-2:] != L_n.shape[-2:]:
        ab_n = upsample_ab(ab_n, L_n.shape[-2:])
    lab = torch.cat([denormalize_l(L_n), denormalize_ab(ab_n)], dim=-3)
    return lab_to_rgb(lab, clip=clip)


def upsample_ab(ab: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """Resize ab ``(B, 2, h, w)`` to ``size`` bilinearly (chroma is smooth; L keeps the detail)."""
    return torch.nn.functional.interpolate(ab, size=tuple(size), mode="bilinear", align_corners=False)


def uint8_to_float(rgb: torch.Tensor) -> torch.Tensor:
    """uint8 ``(*, C, H, W)`` in [0, 255] -> float32 in [0, 1]."""
    if rgb.dtype != torch.uint8:
        raise TypeError(f"expected a uint8 tensor, got {rgb.dtype}")
    return rgb.float() / 255.0


def float_to_uint8(rgb: torch.Tensor) -> torch.Tensor:
    """float in [0, 1] -> uint8 in [0, 255] (rounded, clipped)."""
    return (rgb.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)


def lab_batch(rgb_uint8: torch.Tensor) -> dict[str, torch.Tensor]:
    """uint8 RGB ``(B, 3, H, W)`` -> the batch every approach reads: ``{"L", "ab", "rgb"}``.

    ``L`` is ``(B, 1, H, W)`` in [-1, 1], ``ab`` is ``(B, 2, H, W)`` in about [-1, 1] and ``rgb`` is
    float ``(B, 3, H, W)`` in [0, 1].
    """
    rgb = uint8_to_float(rgb_uint8)
    L, ab = rgb_to_lab_normalized(rgb)
    return {"L": L, "ab": ab, "rgb": rgb}


# Row Y of kornia's linear-RGB -> XYZ (D65) matrix, and its Lab companding constants: L needs only Y,
# so the gray input of a large photo skips X, Z, a and b (same numbers as rgb_to_lab, half the work).
_Y_WEIGHTS = (0.212671, 0.715160, 0.072169)
_LAB_EPSILON, _LAB_KAPPA = 0.008856, 7.787


def rgb_to_gray_l(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB ``(*, 3, H, W)`` in [0, 1] -> normalised L_n ``(*, 1, H, W)``: the grayscale input a colorizer sees.

    Equal to ``rgb_to_lab_normalized(rgb)[0]`` (tested), computed from luminance alone.
    """
    _check_channels(rgb, 3, "rgb")
    linear = rgb_to_linear_rgb(rgb.clamp(0.0, 1.0))
    r, g, b = linear.unbind(-3)
    return _luminance_to_l((_Y_WEIGHTS[0] * r + _Y_WEIGHTS[1] * g + _Y_WEIGHTS[2] * b).unsqueeze(-3))


def uint8_rgb_to_gray_l(rgb: torch.Tensor) -> torch.Tensor:
    """uint8 sRGB ``(*, 3, H, W)`` -> normalised L_n ``(*, 1, H, W)``: :func:`rgb_to_gray_l` of ``rgb / 255``
    (tested to 1e-6), with a 256-entry table per channel in place of the sRGB decoding's power (1.4x faster
    on a 12 MP photo)."""
    _check_channels(rgb, 3, "rgb")
    tables = _luminance_tables(rgb.device)
    levels = rgb.long()
    y = sum(tables[c][levels[..., c, :, :]] for c in range(3))
    return _luminance_to_l(y.unsqueeze(-3))


@functools.cache
def _luminance_tables(device: torch.device) -> torch.Tensor:
    """``(3, 256)``: each channel's uint8 level -> its share of the luminance Y (kornia's decoding, D65 row)."""
    levels = torch.arange(256, dtype=torch.float32, device=device).div(255.0).expand(3, 1, 256)
    return rgb_to_linear_rgb(levels)[:, 0] * torch.tensor(_Y_WEIGHTS, device=device).view(3, 1)


def _luminance_to_l(y: torch.Tensor) -> torch.Tensor:
    """Luminance Y ``(*, 1, H, W)`` -> normalised L_n (the CIE companding of Y)."""
    f = torch.where(y > _LAB_EPSILON, y.clamp(min=_LAB_EPSILON).pow(1 / 3), _LAB_KAPPA * y + 4.0 / 29.0)
    return normalize_l(116.0 * f - 16.0)


def l_to_gray_rgb(L_n: torch.Tensor) -> torch.Tensor:
    """Normalised L ``(*, 1, H, W)`` -> the gray sRGB picture with ab = 0, ``(*, 3, H, W)``."""
    return lab_normalized_to_rgb(L_n, torch.zeros_like(L_n).expand(*L_n.shape[:-3], 2, *L_n.shape[-2:]))


# ---- other colour spaces and regression targets ------------------------------------------------------
#
# YUV (BT.601 analogue, Y in [0, 1], U in [-0.436, 0.436], V in [-0.615, 0.615]), YCbCr (full-range JPEG /
# BT.601: Y, Cb, Cr in [0, 1], chroma centred at 0.5; scikit-image's rgb2ycbcr is the studio-swing
# 16-235/240 version of the same transform) and HSV (hue in radians [0, 2*pi), s and v in [0, 1]), all
# through kornia. A regression approach can predict the chroma of any of them (or full RGB) instead of
# Lab ab: ``rgb_to_target`` gives its training target, ``target_to_rgb`` turns a prediction back into a
# picture whose lightness comes from the input's L.

TargetSpace = Literal["lab", "rgb", "yuv", "ycbcr", "hsv"]
# Channels a net predicts for each target space.
TARGET_CHANNELS: dict[str, int] = {"lab": 2, "rgb": 3, "yuv": 2, "ycbcr": 2, "hsv": 2}
# Largest |U| and |V| of sRGB: scales YUV chroma to [-1, 1], as ab / 110 does for Lab. (U, V) and (Cb, Cr)
# are both scaled (B - Y, R - Y), so once each is scaled to [-1, 1] the two targets differ by < 1e-3.
UV_MAX = (0.436, 0.615)


def rgb_to_yuv(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB ``(*, 3, H, W)`` in [0, 1] -> BT.601 YUV: Y in [0, 1], U in +-0.436, V in +-0.615."""
    _check_channels(rgb, 3, "rgb")
    return kornia_color.rgb_to_yuv(rgb)


def yuv_to_rgb(yuv: torch.Tensor) -> torch.Tensor:
    """YUV ``(*, 3, H, W)`` -> sRGB (not clipped; out-of-gamut YUV gives values outside [0, 1])."""
    _check_channels(yuv, 3, "yuv")
    return kornia_color.yuv_to_rgb(yuv)


def rgb_to_ycbcr(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB ``(*, 3, H, W)`` in [0, 1] -> full-range YCbCr, each channel in [0, 1] (Cb, Cr centred at 0.5)."""
    _check_channels(rgb, 3, "rgb")
    return kornia_color.rgb_to_ycbcr(rgb)


def ycbcr_to_rgb(ycbcr: torch.Tensor) -> torch.Tensor:
    """Full-range YCbCr ``(*, 3, H, W)`` -> sRGB (not clipped)."""
    _check_channels(ycbcr, 3, "ycbcr")
    return kornia_color.ycbcr_to_rgb(ycbcr)


def rgb_to_hsv(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB ``(*, 3, H, W)`` in [0, 1] -> HSV: hue in radians [0, 2*pi), saturation and value in [0, 1]."""
    _check_channels(rgb, 3, "rgb")
    return kornia_color.rgb_to_hsv(rgb)


def hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    """HSV ``(*, 3, H, W)`` (hue in radians, any turn) -> sRGB in [0, 1]."""
    _check_channels(hsv, 3, "hsv")
    hue = hsv[..., :1, :, :].remainder(2 * math.pi)
    return kornia_color.hsv_to_rgb(torch.cat([hue, hsv[..., 1:, :, :]], dim=-3))


def _check_space(space: str) -> None:
    if space not in TARGET_CHANNELS:
        raise ValueError(f"unknown target space {space!r}; choose one of {', '.join(TARGET_CHANNELS)}")


def rgb_to_target(rgb: torch.Tensor, space: TargetSpace) -> torch.Tensor:
    """sRGB ``(*, 3, H, W)`` in [0, 1] -> the regression target of ``space``, in about [-1, 1].

    ``lab``: ab / 110; ``rgb``: 2 * rgb - 1; ``yuv``: (U, V) / (0.436, 0.615); ``ycbcr``: 2 * (Cb, Cr) - 1;
    ``hsv``: s * (cos h, sin h), the hue as a point on the unit circle weighted by saturation, so the
    loss has no 0 / 2*pi seam and ignores the (undefined) hue of gray pixels.
    """
    _check_space(space)
    _check_channels(rgb, 3, "rgb")
    if space == "lab":
        return rgb_to_lab_normalized(rgb)[1]
    if space == "rgb":
        return rgb * 2.0 - 1.0
    if space == "yuv":
        return rgb_to_yuv(rgb)[..., 1:, :, :] / rgb.new_tensor(UV_MAX).view(2, 1, 1)
    if space == "ycbcr":
        return rgb_to_ycbcr(rgb)[..., 1:, :, :] * 2.0 - 1.0
    hsv = rgb_to_hsv(rgb)
    hue, saturation = hsv[..., :1, :, :], hsv[..., 1:2, :, :]
    return torch.cat([saturation * torch.cos(hue), saturation * torch.sin(hue)], dim=-3)


def _match_lightness(
    to_rgb: Callable[[torch.Tensor], torch.Tensor], L_n: torch.Tensor, steps: int = 20
) -> torch.Tensor:
    """``to_rgb(t)`` with ``t`` in [0, 1] found per pixel by bisection so its Lab L equals ``L_n``.

    ``to_rgb`` maps a luma/value channel ``(*, 1, H, W)`` to sRGB with the chroma fixed; its Lab L must
    not decrease with ``t`` (true for Y of YUV/YCbCr and V of HSV). Out of gamut, ``t`` stops at 0 or 1.
    """
    target = denormalize_l(L_n)
    low, high = torch.zeros_like(L_n), torch.ones_like(L_n)
    with torch.no_grad():
        for _ in range(steps):
            mid = (low + high) / 2
            too_dark = rgb_to_lab(to_rgb(mid))[..., :1, :, :] < target
            low, high = torch.where(too_dark, mid, low), torch.where(too_dark, high, mid)
    return to_rgb((low + high) / 2)


def target_to_rgb(pred: torch.Tensor, L_n: torch.Tensor, space: TargetSpace) -> torch.Tensor:
    """A prediction in ``space`` (see :func:`rgb_to_target`) + the input's normalised L -> sRGB in [0, 1].

    ``lab`` merges ab with ``L_n``; ``rgb`` is the prediction itself (its own lightness); for the chroma
    spaces the missing Y (YUV, YCbCr) or V (HSV) is solved so the picture's Lab L equals ``L_n``: a
    round trip ``target_to_rgb(rgb_to_target(rgb), L(rgb))`` gives ``rgb`` back.
    """
    _check_space(space)
    _check_channels(L_n, 1, "L")
    _check_channels(pred, TARGET_CHANNELS[space], f"{space} prediction")
    if space == "lab":
        return lab_normalized_to_rgb(L_n, pred)
    if space == "rgb":
        return ((pred + 1.0) / 2.0).clamp(0.0, 1.0)
    if space == "yuv":
        uv = pred * pred.new_tensor(UV_MAX).view(2, 1, 1)
        return _match_lightness(lambda y: yuv_to_rgb(torch.cat([y, uv], -3)).clamp(0.0, 1.0), L_n)
    if space == "ycbcr":
        cbcr = (pred + 1.0) / 2.0
        return _match_lightness(lambda y: ycbcr_to_rgb(torch.cat([y, cbcr], -3)).clamp(0.0, 1.0), L_n)
    hue = torch.atan2(pred[..., 1:, :, :], pred[..., :1, :, :])
    saturation = pred.norm(dim=-3, keepdim=True).clamp(0.0, 1.0)
    return _match_lightness(lambda v: hsv_to_rgb(torch.cat([hue, saturation, v], -3)), L_n)


# ---- ab quantization for classification colorizers (Zhang et al. 2016) --------------------------------
#
# The ab plane is cut into square cells of side ``AB_GRID`` centred on multiples of it; only the cells that
# sRGB colours reach are classes. Bin centres and all ab values in this section are in Lab units (not ab/110).

AB_GRID = 10.0


def srgb_cube_surface(levels: int = 256) -> torch.Tensor:
    """Colours on the six faces of the sRGB cube, ``levels`` steps per channel: ``(3, N)`` float64, [0, 1]."""
    steps = torch.linspace(0.0, 1.0, levels, dtype=torch.float64)
    u, v = (t.flatten() for t in torch.meshgrid(steps, steps, indexing="ij"))
    faces = []
    for channel in range(3):
        others = [c for c in range(3) if c != channel]
        for value in (0.0, 1.0):
            face = torch.empty(3, u.numel(), dtype=torch.float64)
            face[channel], face[others[0]], face[others[1]] = value, u, v
            faces.append(face)
    return torch.cat(faces, dim=1)


_GAMUT_BINS: dict[tuple[float, int], torch.Tensor] = {}


def ab_gamut_bins(grid: float = AB_GRID, levels: int = 256) -> torch.Tensor:
    """Centres ``(Q, 2)`` (a, b in Lab units) of the grid cells that sRGB colours reach, sorted by (a, b).

    A centre (a multiple of ``grid``) is kept when some sRGB colour with ``levels`` values per channel has
    it as its nearest grid point, so hard-quantizing any pixel of an 8-bit photo lands on a kept bin. Only
    the cube's surface is converted: the ab shadow of the gamut solid is the shadow of its surface (the
    tests check this against all 2**24 colours). For grid 10 and 8-bit colours this gives Q = 261.

    Zhang et al. ship a table of 313 bins; it is wider than what sRGB reaches and no rule over sRGB that we
    measured reproduces it (centres inside the gamut for some L: 229; cells reached by 8-bit sRGB: 261; by
    continuous sRGB: 262, one extra cell touched 0.03 units past its edge; bins among the 5 nearest of some
    sRGB colour: 322), so colorlab computes its classes instead of copying that table.
    """
    key = (float(grid), int(levels))
    if key not in _GAMUT_BINS:
        ab = rgb_to_lab(srgb_cube_surface(levels).unsqueeze(-1))[1:, :, 0]
        cells = torch.round(ab / grid).long()
        low = cells.min(dim=1).values
        span = int(cells[1].max() - low[1]) + 1
        keys = torch.unique((cells[0] - low[0]) * span + cells[1] - low[1])  # sorted by a, then b
        _GAMUT_BINS[key] = (torch.stack([keys // span + low[0], keys % span + low[1]], dim=1) * grid).float()
    return _GAMUT_BINS[key].clone()


def _ab_pixels(ab: torch.Tensor) -> torch.Tensor:
    """``(B, 2, H, W)`` -> ``(B*H*W, 2)`` in float32 (distances to bin centres need more than fp16)."""
    _check_channels(ab, 2, "ab")
    return ab.float().permute(0, 2, 3, 1).reshape(-1, 2)


def quantize_ab(ab: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """Index ``(B, H, W)`` of the nearest bin centre ``(Q, 2)`` for ab ``(B, 2, H, W)`` in Lab units."""
    b, _, h, w = ab.shape
    chunks = _ab_pixels(ab).split(1 << 16)  # bounds the (pixels, Q) distance matrix for big batches
    return torch.cat([torch.cdist(chunk, centers.float()).argmin(dim=1) for chunk in chunks]).view(b, h, w)


def soft_encode_ab(
    ab: torch.Tensor, centers: torch.Tensor, neighbors: int = 5, sigma: float = 5.0
) -> torch.Tensor:
    """Soft one-hot targets ``(B, Q, H, W)``: Gaussian weights (``sigma`` in Lab units) on the nearest bins.

    Each pixel's ``neighbors`` nearest centres get weights ``exp(-d**2 / (2 sigma**2))`` normalised to sum
    to 1; every other bin gets 0.
    """
    b, _, h, w = ab.shape
    pixels = _ab_pixels(ab)
    sq_dist, index = torch.cdist(pixels, centers.float()).square().topk(neighbors, dim=1, largest=False)
    weights = torch.softmax(-sq_dist / (2 * sigma**2), dim=1)
    encoded = torch.zeros(pixels.shape[0], centers.shape[0], device=ab.device).scatter_(1, index, weights)
    return encoded.view(b, h, w, -1).permute(0, 3, 1, 2)


def expected_ab(probs: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """Mean ab ``(B, 2, H, W)`` in Lab units of a distribution ``(B, Q, H, W)`` over the bins."""
    return torch.einsum("bqhw,qc->bchw", probs, centers.to(probs.dtype))


def decode_ab_logits(
    logits: torch.Tensor, centers: torch.Tensor, decode: str = "annealed_mean", temperature: float = 0.38
) -> torch.Tensor:
    """Bin logits ``(B, Q, H, W)`` -> ab ``(B, 2, H, W)`` in Lab units.

    ``mode`` takes the most likely bin's centre, ``mean`` the expectation under ``softmax(logits)``, and
    ``annealed_mean`` the expectation under the distribution re-tempered to ``p**(1/T)`` (renormalised),
    i.e. ``softmax(logits / T)``: ``T = 1`` is the mean and ``T -> 0`` the mode.
    """
    if decode == "mode":
        return centers.to(logits.dtype)[logits.argmax(dim=1)].permute(0, 3, 1, 2)
    if decode not in ("annealed_mean", "mean"):
        raise ValueError(f"unknown decode {decode!r}; choose annealed_mean, mode or mean")
    if decode == "annealed_mean" and temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    scale = temperature if decode == "annealed_mean" else 1.0
    return expected_ab(torch.softmax(logits.float() / scale, dim=1), centers)


def smooth_bin_prior(prior: torch.Tensor, centers: torch.Tensor, sigma: float = 5.0) -> torch.Tensor:
    """Gaussian-smooth a bin distribution ``(Q,)`` over ab space (``sigma`` in Lab units); it still sums to 1.

    Each bin spreads its mass over the bins with weights ``exp(-d**2 / (2 sigma**2))`` normalised per source
    bin, so no mass is lost at the gamut's edge.
    """
    prior = prior.double() / prior.sum()
    kernel = torch.exp(-torch.cdist(centers.double(), centers.double()).square() / (2 * sigma**2))
    return (kernel / kernel.sum(dim=0, keepdim=True)) @ prior


def rebalancing_weights(
    prior: torch.Tensor, centers: torch.Tensor, mix: float = 0.5, sigma: float = 5.0
) -> torch.Tensor:
    """Class-rebalancing weights ``(Q,)`` (float32) from an empirical bin distribution.

    ``w ∝ 1 / ((1 - mix) * p + mix / Q)`` with ``p`` the prior smoothed by :func:`smooth_bin_prior`, scaled
    so the expected weight under ``p`` is 1 (``sum(p * w) == 1``). ``mix`` in (0, 1] is Zhang et al.'s lambda.
    """
    if not 0.0 < mix <= 1.0:
        raise ValueError(f"mix (lambda) must be in (0, 1], got {mix}")
    smoothed = smooth_bin_prior(prior, centers, sigma)
    weights = 1.0 / ((1.0 - mix) * smoothed + mix / smoothed.numel())
    return (weights / (smoothed * weights).sum()).float()
