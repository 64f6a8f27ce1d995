"""The clips: runs of consecutive frames kept in the frames' decode pass (members), their manifest (manifest)."""
