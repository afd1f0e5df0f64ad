"""Typed shapes of the raw Kubernetes objects the operator reads and writes.

Manifests stay plain dicts (what the API server speaks); these TypedDicts name the parts the code touches.
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

from ghostpay_operator.vocabulary import Phase

Manifest = dict[str, Any]


class ObjectMeta(TypedDict, total=False):
    name: str
    namespace: str
    uid: str
    generation: int
    labels: dict[str, str]
    annotations: dict[str, str]
    ownerReferences: list[dict[str, Any]]
    creationTimestamp: str


class Condition(TypedDict):
    type: str
    status: str
    reason: str
    message: str
    lastTransitionTime: str
    observedGeneration: int


class InstanceStatus(TypedDict, total=False):
    observedGeneration: int
    phase: Phase
    conditions: list[Condition]
    activeVersion: str
    activeColor: str
    previousVersion: str
    replicas: int
    readyReplicas: int
    readyText: str
    lastKeyRotation: str
    rateLimitsGeneration: int
    release: dict[str, Any]


class InstanceBody(TypedDict):
    apiVersion: str
    kind: str
    metadata: ObjectMeta
    spec: dict[str, Any]
    status: NotRequired[InstanceStatus]
