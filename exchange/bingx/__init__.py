"""The BingX USDT-M perpetual swap client: signing, wire parsers, REST and websocket."""
