"""The key store's Secrets as the operator makes them (a passphrase, and one Secret per part of a key store
encrypted with it): never owned by the instance, never remade over existing card data (`keystore.plan`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ghostpay.core.keys.local import KeyStoreError
from ghostpay_operator import keystore
from ghostpay_operator import spec as specs
from ghostpay_operator import status as st
from tests.operator.support.key_helpers import PART_NAMES, PASSPHRASE, decoded, key_ids
from tests.operator.support.samples import body

VAULT = {"vault": {"address": "https://vault.example:8200", "role": "gp"}}


# --- ---------------------------------------------------------------------------------
def test_the_operator_makes_a_random_passphrase_and_a_key_store_in_parts_only_it_opens(tmp_path: Path) -> None:
    spec = specs.parse(body())
    first, second = keystore.passphrase_secret(spec), keystore.passphrase_secret(spec)
    assert first["metadata"]["name"] == "payments-keys-passphrase" and list(first["data"]) == ["passphrase"]
    passphrase = keystore.passphrase_of(first)
    assert passphrase is not None and len(passphrase) >= 40 and passphrase != keystore.passphrase_of(second)
    assert keystore.passphrase_of(None) is None
    made = keystore.store_secrets(spec, passphrase)
    assert [m["metadata"]["name"] for m in made] == PART_NAMES
    files = {name: content for m in made for name, content in decoded(m).items()}
    assert {name for m in made[1:] for name in decoded(m)}.isdisjoint(decoded(made[0]))  # private parts apart
    assert len(key_ids(files, tmp_path / "opened", passphrase)) == 1
    with pytest.raises(KeyStoreError):
        key_ids(files, tmp_path / "wrong", "another passphrase")


def test_finding_1_key_secrets_are_not_owned_by_the_instance() -> None:
    """Deleting the instance (or an ArgoCD prune) must not take every stored card number with it."""
    spec = specs.parse(body())
    for secret in [keystore.passphrase_secret(spec), *keystore.store_secrets(spec, PASSPHRASE)]:
        metadata = secret["metadata"]
        assert "ownerReferences" not in metadata, metadata["name"]
        assert metadata["annotations"] == {"ghostpay.io/retention": "Retain"}
        assert metadata["labels"]["app.kubernetes.io/instance"] == "payments"


ALL = frozenset(PART_NAMES)
MISSING = "KeySecretMissing"


@pytest.mark.parametrize(
    ("passphrase", "parts", "database", "expected"),
    [
        ("p", ALL, None, "ready"),
        (None, frozenset(), None, "make"),  # a new instance, the database not (yet) reachable
        (None, frozenset(), False, "make"),
        ("p", frozenset(), False, "make"),  # a store whose making was interrupted, no card data depends on it
        (None, ALL, None, "KeyPassphraseMissing"),  # never a new passphrase for an existing store
        ("p", ALL - {"payments-keys-pan"}, False, MISSING),  # one part lost: never remade, whatever the database
        ("p", ALL - {"payments-keys-public"}, None, MISSING),
        (None, frozenset(), True, MISSING),  # a renamed instance over a database with card data
        ("p", frozenset(), True, MISSING),  # the store Secrets deleted by hand
        ("p", frozenset(), None, MISSING),  # ... and the database cannot say whether card data depends on them
    ],
)
def test_finding_1_a_key_store_is_made_only_where_none_can_have_existed(
    passphrase: str | None, parts: frozenset[str], database: bool | None, expected: str
) -> None:
    seen = keystore.Seen(passphrase=passphrase, parts=parts, database_holds_local_keys=database)
    decision = keystore.plan(specs.parse(body()), seen)
    assert (decision.reason if isinstance(decision, st.Problem) else decision) == expected
    if isinstance(decision, st.Problem) and expected == MISSING:
        assert all(name in decision.message for name in PART_NAMES if name not in parts)
        assert "restore" in decision.message


def test_with_vault_there_is_no_local_store_to_make() -> None:
    seen = keystore.Seen(passphrase=None, parts=frozenset(), database_holds_local_keys=True)
    assert keystore.plan(specs.parse(body(keyRotation=VAULT)), seen) == "ready"
