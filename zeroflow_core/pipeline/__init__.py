"""The pipeline that schedules the science core's runs: params.yaml read and checked (params.py), resolved into
cells (cells.py), run and resumed by the executor (locally or on Ray), the DVC stages' commands (stages.py), the
budget and the learning-rate search, and what a cell's code and provenance are.

It imports the science core (run/, optim/, methods/, models/, data/, settings.py, io.py) and never the book
(tests/test_layers.py)."""
