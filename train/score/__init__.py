"""Scoring: the one metrics module, models and ensembles on batches, checkpoints, and videos scored from files."""
