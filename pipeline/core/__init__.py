"""The pipeline core: the tar writer, manifest fragments and their consolidation, the resplit journal."""
