"""Streaming per-event features for the learned denoiser (PFD quantities, time surfaces, ...).

    from eventfx_core.denoiser.features import FeatureConfig, FeatureExtractor, feature_names
    fx = FeatureExtractor(FeatureConfig(), width, height)
    F = fx.extract(events)      # float32 [n, fx.num_features]; state carries to the next call
"""
from .config import FeatureConfig, feature_names
from .extractor import FeatureExtractor

__all__ = ["FeatureConfig", "FeatureExtractor", "feature_names"]
