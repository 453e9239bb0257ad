"""Reading the store back in time order, clocks and pacing, reports. Never imports `daemon`."""

import events.native  # noqa: F401  (first: serves the compiled modules if built)
