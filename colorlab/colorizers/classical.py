"""Classical guided colorization, no training: Levin et al. 2004 hint propagation and two reference transfers.

Each is a deployable colorizer (:class:`colorlab.colorizers.base.DeployableColorizer`) with no parameters:
the contract ``predict_lab(L, hints=None, reference=None)`` on normalised Lab (see :mod:`colorlab.color` and
:mod:`colorlab.guidance`), so the pipeline runs it like a model:
at a bounded working size (the pipeline's size rule), its ab upsampled and merged with the full-resolution L.
Every command takes them as ``--ckpt levin``, ``--ckpt welsh`` or ``--ckpt reinhard``.

* **Levin** (Colorization using Optimization): each pixel's ab is the affinity-weighted mean of its 3x3
  neighbours', affinities ``exp(-(Y_r - Y_s)^2 / sigma_r^2)`` from the local luminance variance; hinted pixels
  are fixed. One sparse linear solve (scipy, SuperLU) for a and b together.
* **Reinhard** (global statistics in Lab): the reference's lightness is remapped to the target's mean and
  spread, then ab follows the reference's global linear fit of ab on L. A gray target has no ab spread to
  rescale, so this linear fit is what global Lab statistics can transfer to it.
* **Welsh** (Transferring Color to Greyscale Images, 2002): after the same luminance remapping, each target
  pixel takes the ab of the jittered-grid reference sample whose (luminance, 5x5 std) is nearest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from colorlab.color import rgb_to_lab_normalized
from colorlab.colorizers.base import DeployableColorizer
from colorlab.guidance import GuidanceError, HintMap

if TYPE_CHECKING:  # scipy is imported by the Levin functions that use it: 0.1 s of every colorize start-up
    import scipy.sparse

# Levin's MATLAB code: the affinity scale is 0.6 x the window variance, at least 2e-6, and wide enough that
# the most similar neighbour keeps a weight of 0.01.
LEVIN_VARIANCE_FACTOR = 0.6
LEVIN_MIN_SIGMA = 2e-6
WELSH_SAMPLES = 400
WELSH_WINDOW = 5


class ClassicalColorizer(DeployableColorizer):
    """Shared behaviour: no parameters, nothing to train; ``guidance_name`` names it in errors."""

    guidance_name = ""

    def colorize(self, L: torch.Tensor) -> torch.Tensor:
        """Without guidance there is nothing to transfer: ab = 0 (the gray picture)."""
        return L.new_zeros(L.shape[0], 2, *L.shape[2:])


class _ReferenceTransfer(ClassicalColorizer):
    """A transfer from a reference photo: there is nothing to do without one."""

    accepts_reference = True

    def automatic_lab(self, L: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise GuidanceError(f"{self.guidance_name} needs a reference photo (--reference REF.jpg)")


# ---- Levin --------------------------------------------------------------------------------------------------


def levin_affinities(Y: np.ndarray) -> scipy.sparse.csr_matrix:
    """Row-normalised 3x3 luminance affinities ``W`` ``(N, N)`` of a gray picture ``Y`` ``(h, w)`` in [0, 1]."""
    import scipy.sparse

    h, w = Y.shape
    padded = np.pad(Y, 1, mode="constant", constant_values=np.nan)
    index = np.pad(np.arange(h * w).reshape(h, w), 1, constant_values=-1)
    offsets = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    window = np.stack([padded[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] for dy, dx in offsets])
    variance = np.nanvar(window, axis=0)
    neighbours = [(dy, dx) for dy, dx in offsets if (dy, dx) != (0, 0)]
    values = np.stack([padded[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] for dy, dx in neighbours])
    cols = np.stack([index[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] for dy, dx in neighbours])
    squared = (values - Y) ** 2
    nearest = np.nanmin(squared, axis=0)
    sigma = np.maximum(LEVIN_VARIANCE_FACTOR * variance, -nearest / np.log(0.01))
    sigma = np.maximum(sigma, LEVIN_MIN_SIGMA)
    weights = np.where(cols >= 0, np.exp(-np.nan_to_num(squared, nan=0.0) / sigma), 0.0)
    weights /= weights.sum(0, keepdims=True)
    rows = np.broadcast_to(np.arange(h * w).reshape(h, w), cols.shape)
    keep = cols >= 0
    return scipy.sparse.csr_matrix((weights[keep], (rows[keep], cols[keep])), shape=(h * w, h * w))


def levin_propagate(Y: np.ndarray, hint_ab: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Levin et al.'s solve: gray ``Y`` ``(h, w)`` in [0, 1], hint ab ``(2, h, w)``, mask ``(h, w)`` -> ab ``(2, h, w)``.

    Hinted pixels keep their hint; every other pixel equals the affinity-weighted mean of its neighbours.
    """
    import scipy.sparse
    import scipy.sparse.linalg

    h, w = Y.shape
    fixed = mask.reshape(-1) > 0.5
    if not fixed.any():
        return np.zeros((2, h, w))
    free = scipy.sparse.diags((~fixed).astype(np.float64))
    A = scipy.sparse.identity(h * w, format="csr") - free @ levin_affinities(Y)
    b = np.where(fixed[:, None], hint_ab.reshape(2, -1).T, 0.0)
    return scipy.sparse.linalg.splu(A.tocsc()).solve(b).T.reshape(2, h, w)


class LevinColorizer(ClassicalColorizer):
    """Levin et al. 2004 colorization by optimisation; needs hints."""

    guidance_name = "levin"
    accepts_hints = True

    def guided_lab(
        self, L: torch.Tensor, hints: HintMap | None, reference: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised L ``(B, 1, h, w)`` and hints in model pixels -> (L, propagated ab)."""
        Y = ((L[:, 0] + 1) / 2).double().cpu().numpy()
        ab = hints.ab.expand(L.shape[0], -1, -1, -1).double().cpu().numpy()
        mask = hints.mask.expand(L.shape[0], -1, -1, -1)[:, 0].cpu().numpy()
        out = np.stack([levin_propagate(Y[i], ab[i], mask[i]) for i in range(L.shape[0])])
        return L, torch.from_numpy(out).to(L)


# ---- reference transfer ---------------------------------------------------------------------------------------


def remap_luminance(L_ref: torch.Tensor, L: torch.Tensor) -> torch.Tensor:
    """Reinhard/Welsh luminance remapping: the reference's L shifted and scaled to the target's mean and std."""
    return (L_ref - L_ref.mean()) * (L.std() / L_ref.std().clamp_min(1e-6)) + L.mean()


class ReinhardColorizer(_ReferenceTransfer):
    """Global Lab statistics transfer from a reference (Reinhard et al. 2001, for a gray target)."""

    guidance_name = "reinhard"

    def guided_lab(
        self, L: torch.Tensor, hints: HintMap | None, reference: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised L ``(B, 1, h, w)`` and a reference ``(1, 3, H', W')`` in [0, 1] -> (L, ab)."""
        L_ref, ab_ref = rgb_to_lab_normalized(reference.float())
        outs = []
        for L_i in L:
            x = remap_luminance(L_ref, L_i).flatten()
            y = ab_ref.flatten(2)[0]  # (2, N)
            slope = ((x - x.mean()) * (y - y.mean(1, keepdim=True))).mean(1) / x.var(
                unbiased=False
            ).clamp_min(1e-6)
            outs.append(y.mean(1).view(2, 1, 1) + slope.view(2, 1, 1) * (L_i - x.mean()))
        return L, torch.stack(outs).clamp(-1, 1).to(L)


def local_std(L: torch.Tensor, window: int = WELSH_WINDOW) -> torch.Tensor:
    """Standard deviation of ``L`` ``(B, 1, h, w)`` over a ``window``-wide square around each pixel."""
    pad = window // 2
    mean = F.avg_pool2d(F.pad(L, [pad] * 4, mode="replicate"), window, stride=1)
    square = F.avg_pool2d(F.pad(L * L, [pad] * 4, mode="replicate"), window, stride=1)
    return (square - mean * mean).clamp_min(0).sqrt()


class WelshColorizer(_ReferenceTransfer):
    """Welsh et al. 2002: per-pixel luminance + texture statistics matched against reference samples.

    Args:
        samples: about how many jittered-grid samples of the reference are matched against.
        seed: the jitter's seed (the transfer is deterministic).
    """

    guidance_name = "welsh"

    def __init__(self, samples: int = WELSH_SAMPLES, seed: int = 0) -> None:
        super().__init__()
        self.samples = samples
        self.seed = seed

    def guided_lab(
        self, L: torch.Tensor, hints: HintMap | None, reference: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised L ``(B, 1, h, w)`` and a reference ``(1, 3, H', W')`` in [0, 1] -> (L, ab)."""
        L_ref, ab_ref = rgb_to_lab_normalized(reference.float())
        H, W = L_ref.shape[-2:]
        step = max(1, round((H * W / self.samples) ** 0.5))
        generator = torch.Generator().manual_seed(self.seed)
        ys = torch.arange(0, H, step)
        xs = torch.arange(0, W, step)
        ys = (ys[:, None] + torch.randint(0, step, (len(ys), len(xs)), generator=generator)).clamp(max=H - 1)
        xs = (xs[None, :] + torch.randint(0, step, (len(ys), len(xs)), generator=generator)).clamp(max=W - 1)
        ys, xs = ys.flatten().to(L.device), xs.flatten().to(L.device)
        outs = []
        for L_i in L:
            L_r = remap_luminance(L_ref, L_i[None])
            sample_features = torch.stack([L_r[0, 0, ys, xs], local_std(L_r)[0, 0, ys, xs]], 1)
            features = torch.cat([L_i[None], local_std(L_i[None])], 1)[0].flatten(1).T
            # Welsh et al. weigh luminance and neighbourhood std equally.
            nearest = torch.cat(
                [torch.cdist(chunk, sample_features).argmin(1) for chunk in features.split(65536)]
            )
            outs.append(ab_ref[0][:, ys[nearest], xs[nearest]].view(2, *L_i.shape[-2:]))
        return L, torch.stack(outs).to(L)


CLASSICAL = {"levin": LevinColorizer, "reinhard": ReinhardColorizer, "welsh": WelshColorizer}


def classical_colorizer(name: str) -> ClassicalColorizer:
    """The classical method called ``name`` (``levin``, ``reinhard`` or ``welsh``), in eval mode."""
    if name not in CLASSICAL:
        raise ValueError(f"unknown classical method {name!r}; choose one of {', '.join(CLASSICAL)}")
    return CLASSICAL[name]().eval()
