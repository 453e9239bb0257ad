"""The tapeloop process: CLI, config, logging, kernel wiring and (later) the trading core."""
