"""pureffcv compiler: YAML spec -> validated Spec -> stage plan -> CompiledPipeline.
Knows YAML, the op registry and FFCV's State; nothing of Lightning."""
