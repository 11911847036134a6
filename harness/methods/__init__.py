"""Training methods: what changes how a model is trained (samplers, pruning, schedules, ...)."""
from . import base, sampling  # noqa: F401  (registers the samplers and the `none` training method)
