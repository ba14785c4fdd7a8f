"""The continuous autoregressive family: CAM (rectified flow + noise augmentation) and its baselines
(MAR-RF, MAR, GIVT, GIVT+noise) as switches of one model. See docs/cam.md."""

from arwave.models.cam.heads import DDPMHead, GMMHead, RectifiedFlowHead, make_head
from arwave.models.cam.model import CAM
from arwave.models.cam.noise import augment, corrupt, renoise

__all__ = ["CAM", "RectifiedFlowHead", "GMMHead", "DDPMHead", "make_head", "augment", "corrupt", "renoise"]
