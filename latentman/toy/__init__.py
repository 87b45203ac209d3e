"""The toy domain of ``embedded:toy`` (caption grammar, palette, held-out splits); its training is a
development tool outside the package (tools/train_toy_model.py)."""
