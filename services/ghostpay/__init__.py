"""GhostPay payment services: auth, cards, charges and analytics sharing one small core."""

__version__ = "0.1.0"
