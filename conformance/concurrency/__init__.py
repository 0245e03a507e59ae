"""The concurrency check family: greedy answers under concurrent load equal the same prompts alone (LFM2's
per-request convolution-state slots); faults.toml is its fault table."""
