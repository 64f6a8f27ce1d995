"""`python -m pipeline` is `python -m pipeline.run`."""
from pipeline.run import main

main()
