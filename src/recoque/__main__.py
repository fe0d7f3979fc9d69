"""`python -m recoque`: the same CLI as the `recoque` script."""
from recoque.cli import main

main()
