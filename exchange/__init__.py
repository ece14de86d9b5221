"""The venue protocol: the BingX client (`exchange.bingx`) and the BingX-compatible simulator
(`exchange.sim`). Imports only `domain`; never `storage`."""
