"""The core every service shares: settings, database, keys, tokens, errors, rate limits, telemetry."""
