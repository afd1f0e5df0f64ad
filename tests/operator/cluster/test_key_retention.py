"""Finding 1 of the security review, on a real API server with a real database: key material outlives the
instance. Deleting and re-applying an instance keeps its key Secrets; deleting a key Secret degrades the instance
and nothing is regenerated; an instance of another name over the same card data degrades too; restored, the
Secrets open a card issued before it all."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from ghostpay.cards import sealing
from ghostpay.core.keys.local import LocalKeyStore
from ghostpay_devtools import localcluster
from tests.conftest import in_process_api, make_settings
from tests.operator.support.kube_helpers import (
    condition,
    get_json,
    install_crds,
    instance_yaml,
    operator_process,
    wait_for,
)
from tests.support import procs
from tests.support.servers import Servers, fresh_database

pytestmark = pytest.mark.slow
SETTLE = 120.0
STORE = ["payments-keys-public", "payments-keys-signing", "payments-keys-pan"]
KEY_SECRETS = ["payments-keys-passphrase", *STORE]


@pytest.fixture(scope="module")
def operator(cluster: localcluster.Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[procs.Proc]:
    proc = operator_process(install_crds(cluster), tmp_path_factory.mktemp("operator")).start()
    yield proc
    proc.stop()


def _phase(cluster: localcluster.Cluster, namespace: str, name: str, phase: str) -> dict[str, Any] | None:
    instance = get_json(cluster, "ghostpayinstance", name, "-n", namespace)
    status = (instance or {}).get("status") or {}
    if status.get("phase") == phase and status.get("observedGeneration") == instance["metadata"]["generation"]:
        return instance  # type: ignore[no-any-return]
    return None


def _secrets(cluster: localcluster.Cluster, namespace: str) -> dict[str, dict[str, Any]]:
    return {name: s for name in KEY_SECRETS if (s := get_json(cluster, "secret", name, "-n", namespace)) is not None}


def _store_dir(secrets: dict[str, dict[str, Any]], folder: Path) -> tuple[Path, str]:
    folder.mkdir()
    for name in STORE:
        for file_name, value in secrets[name]["data"].items():
            (folder / file_name).write_bytes(base64.b64decode(value))
    return folder, base64.b64decode(secrets["payments-keys-passphrase"]["data"]["passphrase"]).decode()


def _restore(cluster: localcluster.Cluster, namespace: str, secret: dict[str, Any]) -> None:
    kept = {key: secret["metadata"][key] for key in ("name", "labels", "annotations")}
    body = {"apiVersion": "v1", "kind": "Secret", "metadata": kept, "data": secret["data"]}
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(body))


def _degraded_naming(cluster: localcluster.Cluster, namespace: str, name: str, missing: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        instance = _phase(cluster, namespace, name, "Degraded")
        if instance and missing in condition(instance, "Degraded")["message"]:
            return instance
        return None

    instance = wait_for(probe, SETTLE, f"{name} Degraded naming {missing}")
    assert condition(instance, "Degraded")["reason"] == "KeySecretMissing"
    return instance


async def test_finding_1_key_material_outlives_the_instance(
    operator: procs.Proc, cluster: localcluster.Cluster, namespace: str, servers: Servers, tmp_path: Path
) -> None:
    database_url = await fresh_database(servers.database_url, "gp_key_retention")
    cluster.kubectl("create", "secret", "generic", "payments-db", "-n", namespace, f"--from-literal=dsn={database_url}")
    cluster.kubectl("apply", "-f", "-", input=instance_yaml(namespace))
    wait_for(lambda: _phase(cluster, namespace, "payments", "Healthy"), SETTLE, "a Healthy instance")
    made = _secrets(cluster, namespace)
    assert sorted(made) == sorted(KEY_SECRETS)

    # A card issued with the store the operator made (as the cards pod would, from the mounted Secrets).
    keys_dir, passphrase = _store_dir(made, tmp_path / "before")
    settings = make_settings(database_url, servers.redis_url, keys_dir, keys_passphrase=passphrase)
    async with in_process_api(settings) as api:
        card = await api.issue_card(await api.admin())

    # Deleted and re-applied: the same Secrets, untouched.
    cluster.kubectl("delete", "ghostpay", "payments", "-n", namespace, "--timeout=60s")
    wait_for(
        lambda: (
            not get_json(cluster, "deployments", "-n", namespace, "-l", "app.kubernetes.io/instance=payments")["items"]
        ),
        SETTLE,
        "the instance's Deployments to be collected",
    )
    kept = _secrets(cluster, namespace)
    assert {n: s["metadata"]["uid"] for n, s in kept.items()} == {n: s["metadata"]["uid"] for n, s in made.items()}
    cluster.kubectl("apply", "-f", "-", input=instance_yaml(namespace))
    wait_for(lambda: _phase(cluster, namespace, "payments", "Healthy"), SETTLE, "the re-applied instance Healthy")
    again = _secrets(cluster, namespace)
    assert {n: s["data"] for n, s in again.items()} == {n: s["data"] for n, s in made.items()}

    # The PAN part deleted: Degraded, naming it, and nothing regenerated.
    cluster.kubectl("delete", "secret", "payments-keys-pan", "-n", namespace)
    _degraded_naming(cluster, namespace, "payments", "payments-keys-pan")
    assert "payments-keys-pan" not in _secrets(cluster, namespace)

    # Every store Secret deleted: the database holds data keys that store wrapped, so still nothing is made.
    cluster.kubectl("delete", "secret", "payments-keys-public", "payments-keys-signing", "-n", namespace)
    _degraded_naming(cluster, namespace, "payments", "payments-keys-public")
    # A new instance name over the same card data (a rename) is refused a new store as well.
    cluster.kubectl("apply", "-f", "-", input=instance_yaml(namespace, name="renamed"))
    _degraded_naming(cluster, namespace, "renamed", "renamed-keys-pan")
    assert get_json(cluster, "secret", "renamed-keys-public", "-n", namespace) is None
    assert sorted(_secrets(cluster, namespace)) == ["payments-keys-passphrase"]

    # Restored from the backup: Healthy again, and the card issued before opens.
    for name in STORE:
        _restore(cluster, namespace, made[name])
    wait_for(lambda: _phase(cluster, namespace, "payments", "Healthy"), SETTLE, "the restored instance Healthy")
    restored_dir, passphrase = _store_dir(_secrets(cluster, namespace), tmp_path / "after")
    keys = LocalKeyStore(restored_dir, passphrase).open(create=False)
    connection = await asyncpg.connect(database_url)
    try:
        row = await connection.fetchrow(
            "SELECT c.pan_ciphertext, c.data_key_id, k.wrapped_key FROM cards c "
            "JOIN data_keys k ON k.key_id = c.data_key_id WHERE c.card_id = $1",
            card["card_id"],
        )
    finally:
        await connection.close()
    data_key = sealing.DataKey(row["data_key_id"], keys.unwrap(row["wrapped_key"]))
    assert sealing.unseal_pan(data_key, card["card_id"], row["pan_ciphertext"]) == card["pan"]
