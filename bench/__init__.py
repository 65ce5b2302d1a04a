"""funcmart benchmarks: `make bench` (or `python -m bench`) writes docs/benchmarks.md.

They are measurements, not tests: nothing here asserts a timing. `python -m bench --smoke`
runs every benchmark at a tiny size so that `make test` notices when one breaks.
"""
