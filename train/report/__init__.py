"""Reporting: explain a run (predictions, top losses, Grad-CAM, the pointing game), figures, the run report, the
evaluation of a checkpoint on a split, and the page that compares runs."""
