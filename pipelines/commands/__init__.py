"""One module per ``pureffcv`` subcommand (see ``pipelines.cli``)."""
