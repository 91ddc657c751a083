from zeroflow_core.models.adapters import Adapter
from zeroflow_core.models.vit import (
    BACKBONES,
    AdapterClassifier,
    AdapterViT,
    create_adapter_vit,
    disable_fused_attention,
)

__all__ = ["Adapter", "AdapterClassifier", "AdapterViT", "BACKBONES", "create_adapter_vit", "disable_fused_attention"]
