"""The pipeline core: the one process pool, the one tar writer, manifest fragments and their consolidation.

The pipeline core: the tar writer, manifest fragments and their consolidation, the resplit journal.
"""
