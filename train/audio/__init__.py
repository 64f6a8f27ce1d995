"""The audio detector: windows of each video's kept sound -> bispectral and log-mel features -> a small network.

data (audio.parquet and the audio shards through pipeline.dataset) -> features -> model (fit, checkpoint) -> run
(the `train.run --input audio` run folder) and explain (top and bottom windows). Kept apart from the image
trainer's packages: it reads the dataset the same way and scores with the same metrics (train.score.metrics).
"""
