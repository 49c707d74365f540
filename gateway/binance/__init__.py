"""The Binance USDⓈ-M compatible facade: the same venue and sequencer behind Binance's REST
routes, so that a bot written for Binance futures (ccxt's ``binanceusdm``) connects by changing
its URLs (docs/binance-api.md)."""
