"""Development and test tools for GhostPay, kept out of the operator and service image: `localcluster` (a local
Kubernetes control plane for `ghostpay cluster up`, the operator's cluster tests and its benchmark)."""
