"""AAR: next-scale prediction over SAT's multi-scale token maps (model in `model.py`, kind in `kind.py`)."""

from arwave.models.aar.model import AAR, AARConfig, Window, block_causal_mask, keep_masks

__all__ = ["AAR", "AARConfig", "Window", "block_causal_mask", "keep_masks"]
