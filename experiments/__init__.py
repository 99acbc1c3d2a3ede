"""Scripts that reproduce the paper's experiments: `python -m experiments.NAME --help`."""
