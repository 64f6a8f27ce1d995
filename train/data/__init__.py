"""The trainer's data: shards -> samples -> decoded pixels -> batches (streams, decode, batches)."""
