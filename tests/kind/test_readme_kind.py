"""The README's marked kind block (tests/kind/readme.py) is the whole flow the issue names, so emptying it cannot pass
unnoticed; tests/kind/test_end_to_end.py runs it, command by command, as its install."""

from __future__ import annotations

from tests.kind.readme import offline_block


def test_the_marked_block_is_the_readmes_kind_flow() -> None:
    block = offline_block()
    for command in (
        "make image",
        "ghostpay cluster up --kind",
        "kind load docker-image",
        "helm install ghostpay manifests/helm/ghostpay -n shop --create-namespace --set demo.enabled=true",
        "kubectl wait ghostpayinstance/payments",
        "127.0.0.1:30082/charges",
        "kubectl port-forward",
    ):
        assert command in block, command
