"""pureffcv pipelines: everything a user runs (conversion, Lightning DataModule and model,
the CLI, the demo, benchmarks glue). Imports compiler and operations, never the reverse."""
