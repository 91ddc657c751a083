"""The adapter ViT (vit.py, adapters.py), its heads, the pretrained weights it loads and the stacked parameter sets
that evaluate several perturbed copies in one forward.

Science core: imports nothing else of zeroflow_core (tests/test_layers.py)."""
from zeroflow_core.models.adapters import Adapter
from zeroflow_core.models.vit import (
    BACKBONES,
    AdapterClassifier,
    AdapterViT,
    create_adapter_vit,
    disable_fused_attention,
)

__all__ = ["Adapter", "AdapterClassifier", "AdapterViT", "BACKBONES", "create_adapter_vit", "disable_fused_attention"]
