"""The tapeloop process: CLI, config, logging, kernel wiring and (later) the trading core."""

import events.native  # noqa: F401  (first: serves the compiled modules if built)
