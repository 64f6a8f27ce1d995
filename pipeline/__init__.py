"""Videos -> frame shards -> face and audio shards + Parquet manifests: the pipeline owns the on-disk format."""
