"""The object-discovery networks of a run: AKOrN (attention coupling, GTA) or ItrSA / ViT, built from its config."""

from __future__ import annotations

from torch import nn

from networks.models import ObjectAKOrN, ObjectViT
from studies.objects.config import MODEL_NAMES, Config

__all__ = ["MODEL_NAMES", "build_model"]



def build_model(config: Config) -> nn.Module:
    """The network of ``config`` (fresh weights from torch's global generator)."""
    cfg = config.resolved()
    common = dict(image_size=cfg.image_size, width=cfg.width, depth=cfg.depth, heads=cfg.heads,
                  patch_size=cfg.patch_size)
    if cfg.model == "akorn":
        return ObjectAKOrN(**common, n=cfg.n, steps=cfg.steps, coupling=cfg.coupling, kernel_size=cfg.kernel_size,
                           gta=cfg.gta, stimulus_norm=cfg.stimulus_norm,
                           legacy_identity_omega=cfg.legacy_identity_omega)
    return ObjectViT(**common, steps=cfg.steps if cfg.model == "itrsa" else 1)
