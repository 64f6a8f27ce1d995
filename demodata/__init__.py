"""Demo data generators: small DFDC-shaped datasets for the demos and tests (not part of the decode pipeline)."""
