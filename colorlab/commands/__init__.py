"""Commands of ``python -m colorlab``: argument parsing and printing on top of the library."""
