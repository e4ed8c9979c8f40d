"""The contract every deployable colorizer implements, and the one way its nets are rebuilt from a config.

Contract: ``predict_lab(L, hints=None, reference=None) -> (L_out, ab)`` maps normalised L ``(B, 1, H, W)`` in
[-1, 1] to the normalised Lab of the output picture (see :mod:`colorlab.color`); optional guidance are colour
hints in model pixels and a reference photo (:mod:`colorlab.guidance`). A colorizer that cannot use a kind of
guidance refuses it by name (``accepts_hints`` / ``accepts_reference``). Without guidance ``automatic_lab``
answers: by default the input's L and :meth:`DeployableColorizer.colorize`'s ab; a colorizer that outputs its
own L (restoration, RGB targets, upscaling) overrides ``automatic_lab`` instead; one that uses guidance
implements ``guided_lab``.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any, ClassVar

import torch
from torch import nn

from colorlab.color import lab_normalized_to_rgb
from colorlab.guidance import HintMap, refuse_guidance

# Class paths a checkpoint's config may name: colorlab's own nets and torch's layers. A config is data from
# a file; it must not be able to build an arbitrary object.
BUILDABLE_PREFIXES = ("colorlab.", "torch.nn.", "timm.")


def instantiate(config: Any) -> Any:
    """Build ``{"class_path": ..., "init_args": {...}}`` configs (nested, as LightningCLI stores them) into
    objects; every other value is returned as it is (lists and dicts walked)."""
    if isinstance(config, dict) and "class_path" in config:
        class_path = str(config["class_path"])
        if not class_path.startswith(BUILDABLE_PREFIXES):
            raise ValueError(f"refusing to build {class_path}: a checkpoint config may only name colorlab, "
                             "torch.nn or timm classes")  # fmt: skip
        module_name, _, class_name = class_path.rpartition(".")
        cls = getattr(importlib.import_module(module_name), class_name)
        return cls(**{k: instantiate(v) for k, v in (config.get("init_args") or {}).items()})
    if isinstance(config, dict):
        return {k: instantiate(v) for k, v in config.items()}
    if isinstance(config, list):
        return [instantiate(v) for v in config]
    return config


class DeployableColorizer(nn.Module):
    """Base of the deployable colorizers: one contract, ``predict_lab``, and how to rebuild from a config.

    ``hparam_names`` maps an ``__init__`` argument to the approach's hyper-parameter of another name (e.g. the
    upscaling ``net`` is a GAN approach's ``generator``), so :meth:`init_args_from` reads any checkpoint.
    """

    restores_l: ClassVar[bool] = False  # True when predict_lab returns its own L (pipelines then keep it)
    accepts_hints: ClassVar[bool] = False
    accepts_reference: ClassVar[bool] = False
    hparam_names: ClassVar[dict[str, str]] = {}

    def predict_lab(
        self, L: torch.Tensor, hints: HintMap | None = None, reference: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """THE contract: normalised L ``(B, 1, H, W)`` (with optional ``hints`` in model pixels and a
        ``reference`` RGB ``(1 or B, 3, h, w)`` in [0, 1]) -> normalised ``(L_out, ab)`` of the output picture."""
        refuse_guidance(self, hints, reference, self.accepts_hints, self.accepts_reference)
        if hints is None and reference is None:
            return self.automatic_lab(L)
        return self.guided_lab(L, hints, reference)  # defined by every colorizer that accepts guidance

    def automatic_lab(self, L: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``predict_lab`` without guidance: the input's L and :meth:`colorize`'s ab."""
        return L, self.colorize(L)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # predict_lab hands accepted guidance to guided_lab: a colorizer that accepts some must answer it
        # (private shared bases, such as the reference transfers', leave it to their subclasses).
        shared_base = cls.__name__.startswith("_")
        if (cls.accepts_hints or cls.accepts_reference) and not shared_base and not hasattr(cls, "guided_lab"):
            raise TypeError(f"{cls.__name__} accepts hints or a reference but defines no guided_lab")

    def colorize(self, L: torch.Tensor) -> torch.Tensor:
        """Normalised L ``(B, 1, H, W)`` -> ab ``(B, 2, H, W)``, for colorizers that keep the input's L."""
        raise NotImplementedError(f"{type(self).__name__} outputs its own L: call predict_lab(L)")  # by design

    def colorize_rgb(self, L: torch.Tensor) -> torch.Tensor:
        """Normalised L -> the colorized sRGB picture in [0, 1], clipped to the gamut."""
        return lab_normalized_to_rgb(*self.predict_lab(L))

    def forward(self, L: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.automatic_lab(L)

    @classmethod
    def init_args_from(cls, hparams: dict[str, Any]) -> dict[str, Any]:
        """This class's ``__init__`` arguments taken from an approach's stored hyper-parameters (configs
        built, pretrained-weight loading switched off: the checkpoint holds the weights)."""
        args = {}
        for name in inspect.signature(cls.__init__).parameters:
            key = cls.hparam_names.get(name, name)
            if name == "self" or key not in hparams:
                continue
            args[name] = instantiate(_without_pretrained(hparams[key]))
        return args


def _without_pretrained(config: Any) -> Any:
    """``config`` with every ``pretrained: true`` turned off: the checkpoint's weights replace them anyway, and
    loading them again would cost start-up time (or fail offline for weights that are not installed)."""
    if isinstance(config, dict):
        return {k: (False if k == "pretrained" and v is True else _without_pretrained(v)) for k, v in config.items()}
    if isinstance(config, list):
        return [_without_pretrained(v) for v in config]
    return config
