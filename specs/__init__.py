"""The shipped specs (``*.yaml``) and run configs (``runs/*.yaml``), installed with the package
as data; ``compiler.shipped`` finds them by name."""
