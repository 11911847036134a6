"""Datasets read from their standard on-disk formats, and the device-resident loader that batches them."""
from .datasets import (DatasetInfo, Split, Splits, dataset_names, downloadable, load, locate, nominal_shape,
                       nominal_size, search_paths)
from .loader import DeviceLoader

__all__ = ["DatasetInfo", "DeviceLoader", "Split", "Splits", "dataset_names", "load", "locate", "search_paths"]
