"""One run of the science core: its configuration (config.py: the run keys, the profiles in profiles.yaml, the
layers that set them), the continual loop (train.py), the metrics, the smoke backbone's pretraining, the step
benchmark, and what a run spends (timing, memory, device, progress).

Part of the science core: it imports optim/, methods/, models/, data/, settings.py and io.py, never the pipeline
nor the book (tests/test_layers.py)."""
