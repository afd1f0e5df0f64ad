"""The charges service: charge a single-use card exactly once, with idempotency keys."""
