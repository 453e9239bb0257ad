"""Binance: wire messages in Binance's own field names, parsers into our events."""
