"""Venues: adapters turn wire messages into events and order events into requests."""

import events.native  # noqa: F401  (first: serves the compiled modules if built)
