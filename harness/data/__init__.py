"""Datasets read from their standard on-disk formats, the device-resident loader that batches them,
and the streaming loader that reads class folders image by image (``data.loader``: ``choose_loader``).

The declarations (names, shapes, sizes, where each lies: ``harness.data.specs``) import no torch;
the readers and the loader import torch and torchvision, so they are imported on first use: a
driver that only checks names and finds folders never pays for them.
"""
from .specs import (LoaderChoice, budget_bytes, choose_loader, dataset_names, downloadable, locate, nominal_shape,
                    nominal_size, search_paths, workers_per_trial)

_LAZY = {"DatasetInfo": "datasets", "Split": "datasets", "Splits": "datasets", "load": "datasets",
         "DeviceLoader": "loader", "StreamLoader": "stream", "FolderSplit": "folders", "load_folders": "folders"}

__all__ = ["DatasetInfo", "DeviceLoader", "FolderSplit", "LoaderChoice", "Split", "Splits", "StreamLoader",
           "budget_bytes", "choose_loader", "dataset_names", "downloadable", "load", "load_folders", "locate",
           "nominal_shape", "nominal_size", "search_paths", "workers_per_trial"]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
