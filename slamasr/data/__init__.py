"""Data: Lhotse manifests, features, samplers, the batch-dict dataset, validation."""

from slamasr.data.dataset import SlamAsrDataset, build_dataloader
from slamasr.data.manifests import load_cuts

__all__ = ["SlamAsrDataset", "build_dataloader", "load_cuts"]
