"""What changes how a model is trained: samplers (harness.registry.SAMPLERS), training methods (METHODS)
and experiments (EXPERIMENTS), one module per method or family of them.

This file imports none of them: each registry imports its own modules on its first lookup
(harness.registry.METHOD_MODULES), so a config check that asks for a sampler imports no torch.
"""
