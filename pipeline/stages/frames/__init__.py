"""The frames stage: videos decoded once (frames and sound) into frame shards and the core manifest."""
