"""The analytics service: relays the outbox into aggregates and serves the summary."""
