"""Strategies: the `Strategy` base class (base), its runtime (runtime, routing,
loader), bars from trades (bars), indicators, sizing, and the built-in strategies
(sma_cross, mean_reversion, market_maker) and execution algorithms (twap, vwap,
iceberg, sor_strategy; their journaled parent/children in parent, the shared
schedule in schedule, volume profiles in volume_profile, the router in sor). See
DESIGN "Built-in strategies"."""
