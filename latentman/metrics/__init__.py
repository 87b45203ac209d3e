"""Evaluation: H_MSE (paper Eq. 9 and the official code's computation), aggregation, plots."""
