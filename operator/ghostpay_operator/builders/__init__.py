"""Desired state as pure functions: an instance's spec (and what was observed) in, plain manifest dicts out.

No I/O and no Kubernetes client here (an import contract checks it); table-driven tests cover every builder.
"""
