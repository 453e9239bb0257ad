"""Documented Binance payloads shared by the adapter tests and the fake server."""

from __future__ import annotations

# Protocol doc §5 (GET /api/v3/exchangeInfo), verbatim.
DOC_EXCHANGE_INFO = b"""{"timezone":"UTC","serverTime":1763735400000,
 "rateLimits":[
  {"rateLimitType":"REQUEST_WEIGHT","interval":"MINUTE","intervalNum":1,"limit":6000},
  {"rateLimitType":"ORDERS","interval":"SECOND","intervalNum":10,"limit":100},
  {"rateLimitType":"ORDERS","interval":"DAY","intervalNum":1,"limit":200000},
  {"rateLimitType":"RAW_REQUESTS","interval":"MINUTE","intervalNum":5,"limit":300000}],
 "exchangeFilters":[],
 "symbols":[{"symbol":"BTCUSDT","status":"TRADING",
  "baseAsset":"BTC","baseAssetPrecision":8,"quoteAsset":"USDT","quotePrecision":8,
  "quoteAssetPrecision":8,"baseCommissionPrecision":8,"quoteCommissionPrecision":8,
  "orderTypes":["LIMIT","LIMIT_MAKER","MARKET","STOP_LOSS","STOP_LOSS_LIMIT","TAKE_PROFIT","TAKE_PROFIT_LIMIT"],
  "icebergAllowed":true,"ocoAllowed":true,"quoteOrderQtyMarketAllowed":true,
  "allowTrailingStop":true,"cancelReplaceAllowed":true,"isSpotTradingAllowed":true,
  "filters":[
   {"filterType":"PRICE_FILTER","minPrice":"0.01000000","maxPrice":"1000000.00000000","tickSize":"0.01000000"},
   {"filterType":"LOT_SIZE","minQty":"0.00001000","maxQty":"9000.00000000","stepSize":"0.00001000"},
   {"filterType":"ICEBERG_PARTS","limit":100},
   {"filterType":"MARKET_LOT_SIZE","minQty":"0.00000000","maxQty":"128.52621715","stepSize":"0.00000000"},
   {"filterType":"PERCENT_PRICE_BY_SIDE","bidMultiplierUp":"5","bidMultiplierDown":"0.2","askMultiplierUp":"5","askMultiplierDown":"0.2","avgPriceMins":5},
   {"filterType":"NOTIONAL","minNotional":"5.00000000","applyMinToMarket":true,"maxNotional":"9000000.00000000","applyMaxToMarket":false,"avgPriceMins":5},
   {"filterType":"MAX_NUM_ORDERS","maxNumOrders":200},
   {"filterType":"MAX_NUM_ALGO_ORDERS","maxNumAlgoOrders":5}],
  "permissions":[],"permissionSets":[["SPOT","MARGIN"]],
  "defaultSelfTradePreventionMode":"EXPIRE_MAKER",
  "allowedSelfTradePreventionModes":["EXPIRE_TAKER","EXPIRE_MAKER","EXPIRE_BOTH","DECREMENT","TRANSFER"]}]}"""
