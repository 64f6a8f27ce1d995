"""The stages, each a kind of the same thing: frames (with the sound) from videos, faces from frame shards."""
