"""`python -m pipeline` is `python -m pipeline.run`."""
from .run import main

main()
