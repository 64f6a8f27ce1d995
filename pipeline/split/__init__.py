"""The split: group-aware hashing and official split files."""
