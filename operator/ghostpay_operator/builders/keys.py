"""The local key store's Secrets (instances without Vault): which workload is given which part, and the Secret
manifests (`names` composes their names).

The store is kept in three Secrets, one per part (`ghostpay.core.keys.local.PARTS`), plus the passphrase that
encrypts the private parts: the public part goes to every service, the signing part only to auth (where tokens
are issued), the PAN part only to cards (where card numbers are sealed), and the passphrase only to those two —
charges and analytics verify tokens and hold no private key. The key-rotation Job reads and rewrites them all.

These Secrets are never owned by the instance: losing them loses every stored card number, so they outlive it
(kept on delete, as CloudNativePG keeps its PVCs) and a re-applied instance of the same name finds them again.
"""

from __future__ import annotations

import base64
from typing import Any

from ghostpay.core.keys.local import Part
from ghostpay_operator.builders import meta, names
from ghostpay_operator.kinds import Manifest
from ghostpay_operator.spec import SERVICES, InstanceSpec

PASSPHRASE_KEY = "passphrase"  # noqa: S105 - the key inside the passphrase Secret, not a secret
COMPONENT = names.KEY_STORE
RETENTION = "ghostpay.io/retention"
RETAINED = "Retain"
# Every service gets the public part; these two also get a private one.
PRIVATE_PARTS: dict[str, tuple[Part, ...]] = {"auth": ("signing",), "cards": ("pan",)}


def parts_of(workload: str) -> tuple[Part, ...]:
    """What `workload` is given of the store: nothing for the migration Job (it touches no key)."""
    return ("public", *PRIVATE_PARTS.get(workload, ())) if workload in SERVICES else ()


def needs_passphrase(workload: str) -> bool:
    return any(part != "public" for part in parts_of(workload))


def volume(spec: InstanceSpec, workload: str) -> dict[str, Any] | None:
    """One read-only directory with exactly the parts `workload` is given (a projected volume of their Secrets);
    None in Vault mode or for a workload that needs no key."""
    if spec.vault is not None or not parts_of(workload):
        return None
    sources = [{"secret": {"name": names.key_part_secret(spec.name, part)}} for part in parts_of(workload)]
    return {"name": "keys", "projected": {"sources": sources, "defaultMode": 0o400}}


def retained_meta(spec: InstanceSpec, name: str) -> dict[str, Any]:
    """The instance's labels (so `kubectl get secret -l app.kubernetes.io/instance=…` finds them) but no owner
    reference: deleting the instance, renaming it or an ArgoCD prune must not take the keys with it."""
    metadata = meta.object_meta(spec, name, {"app.kubernetes.io/component": COMPONENT})
    del metadata["ownerReferences"]
    metadata["annotations"] = {RETENTION: RETAINED}
    return metadata


def secret(spec: InstanceSpec, name: str, data: dict[str, bytes]) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": retained_meta(spec, name),
        "data": {key: base64.b64encode(value).decode() for key, value in sorted(data.items())},
    }
