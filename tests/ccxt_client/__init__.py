"""ccxt's own clients against the project's fake Binance (issue 11): `fake_exchange`
builds them, the tests here check that ccxt and the fake agree."""
