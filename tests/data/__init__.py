"""Market data path: broker session, verification, normalizer, hot state, reconnect, pacing."""
