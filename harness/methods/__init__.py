"""Training methods: what changes how a model is trained (samplers, pruning, schedules, ...)."""
from . import sampling  # noqa: F401  (registers the samplers)
