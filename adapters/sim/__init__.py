"""The simulated venue (paper trading and replay): `SimVenue`.

venue.py wires the order flow and the accounts; matching.py decides how each
order type executes against a market event; fill_models.py when resting limit
orders fill; slippage.py and fees.py what an execution costs; market.py what
the venue remembers of each symbol's market; orders.py the venue's order
record and arrival checks; accounts.py the balances.
"""

from adapters.sim.venue import SimVenue

__all__ = ["SimVenue"]
