"""Venues: adapters turn wire messages into events and order events into requests."""
