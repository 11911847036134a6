"""Datasets read from their standard on-disk formats, and the device-resident loader that batches them.

The declarations (names, shapes, sizes, where each lies: ``harness.data.specs``) import no torch;
the readers and the loader import torch and torchvision, so they are imported on first use: a
driver that only checks names and finds folders never pays for them.
"""
from .specs import dataset_names, downloadable, locate, nominal_shape, nominal_size, search_paths

_LAZY = {"DatasetInfo": "datasets", "Split": "datasets", "Splits": "datasets", "load": "datasets",
         "DeviceLoader": "loader"}

__all__ = ["DatasetInfo", "DeviceLoader", "Split", "Splits", "dataset_names", "downloadable", "load", "locate",
           "nominal_shape", "nominal_size", "search_paths"]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
