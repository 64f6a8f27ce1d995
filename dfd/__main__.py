"""`python -m dfd`: the same as the `dfd` console script."""
from dfd.main import main

main()
