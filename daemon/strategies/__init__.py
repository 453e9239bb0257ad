"""Strategies: the `Strategy` base class (base), its runtime (runtime, routing,
loader), bars from trades (bars), indicators, sizing, and the built-in strategies
(sma_cross, mean_reversion, market_maker, twap). See DESIGN "Built-in strategies"."""
