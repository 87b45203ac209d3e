"""Training of ``embedded:toy``: architecture, painted dataset, recipe and quality bar.

The toy domain itself (caption grammar, palette, held-out splits) stays in :mod:`latentman.toy.domain`:
the workflow reads it to check a toy prompt.
"""
