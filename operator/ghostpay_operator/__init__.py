"""The GhostPay Kubernetes operator (kopf): reconciles GhostPayInstance resources. Grows with issue 3."""
