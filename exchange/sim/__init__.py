"""A BingX-compatible simulator on loopback: the same wire format as the venue (REST envelopes,
gzip websocket frames, Ping/Pong, signed requests, error codes), replaying candle files, with fault
injection that tests switch on. Everything that speaks to BingX is tested against it."""
