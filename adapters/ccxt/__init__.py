"""Venues through ccxt (any exchange ccxt.pro speaks): market data, orders that are
never doubled, reconciliation. ccxt itself is imported only inside the functions
that need it, so nothing that `status`, `replay` or a non-ccxt `run` imports pulls
it in."""
