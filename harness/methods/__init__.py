"""Training methods: what changes how a model is trained (samplers, pruning, schedules, ...)."""
from . import base, sampling  # noqa: F401  (registers the samplers and the `none` training method)
from . import compress  # noqa: E402,F401  (Çallı's approximation of a trained model: the `approximate` method)
from . import node_pruning, residual_pruning  # noqa: E402,F401  (Çallı's node pruning in training cycles: experiments)
from . import poellot  # noqa: E402,F401  (Pöllot et al.: the `flop_budget` method, FLOP budget and batch timing)
from . import chain, dbs, pruning  # noqa: E402,F401  (Zheng et al.: `prune`, `dbs`, and `chain` to combine them)
from . import latency  # noqa: E402,F401  (forward latency of a built model, recorded by a trial: `latency`)
