"""The pytest-lfm conformance suite: one module per check family, cases as data files."""
