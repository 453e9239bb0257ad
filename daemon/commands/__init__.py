"""One module per `tapeloop` subcommand."""
