"""Binance USD-M perpetual futures (linear, USDT-margined, one-way): the pieces
that differ from Spot. What Spot already does right (signing, rate limits,
reconnects, REST error mapping, depth sync in "usdm" mode, the execution-report
duplicate rules) is reused from `adapters.binance`."""
