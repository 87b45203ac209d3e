"""The toy domain and the trained embedded model (``embedded:toy``)."""
