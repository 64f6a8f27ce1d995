"""The sound stage: the sound as kept (16-bit mono WAV) and its audio.parquet and dataset.json section."""
