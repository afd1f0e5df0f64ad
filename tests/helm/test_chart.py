"""The Helm chart (manifests/helm/ghostpay) rendered by Helm built here: lint, the default and demo renders, its
CRDs and operator objects against the repository's (crds/, kustomize manifests/), and its values schema."""

from __future__ import annotations

import base64
import copy
import json
import re
import subprocess
from typing import Any

import pytest
import yaml
from cryptography import x509

from ghostpay_devtools import localcluster
from ghostpay_operator import spec as specs
from ghostpay_operator.builders import workloads
from tests.helm import helm
from tests.helm.helm import CHART, ROOT, VERSION, Manifest

DEMO = "demo.enabled=true"
NODE_PORTS = {"auth": 30080, "cards": 30081, "charges": 30082, "analytics": 30083}  # contract §4
OPERATOR_KINDS = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Deployment", "ClusterKopfPeering"}


PROMETHEUS = "demo.prometheus.enabled=true"


@pytest.mark.parametrize(
    "values", [[], [DEMO], [DEMO, "demo.vault.enabled=true"], [DEMO, PROMETHEUS], ["watchNamespace=shop"]]
)
def test_helm_lint_passes_strictly(values: list[str]) -> None:
    sets = [arg for value in values for arg in ("--set", value)]
    result = helm.run("lint", "--strict", str(CHART), *sets)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


def test_chart_and_image_versions_are_the_package_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert (chart["apiVersion"], chart["version"], chart["appVersion"]) == ("v2", VERSION, VERSION)
    [deployment] = [m for m in helm.template() if m["kind"] == "Deployment"]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert (container["image"], container["imagePullPolicy"]) == (f"ghostpay/ghostpay:{VERSION}", "IfNotPresent")


def test_chart_crds_and_policies_are_the_repositorys() -> None:
    """The chart's crds/ and files/policies/ are copies of crds/ and policies/ (tools/helm/sync.sh), byte for
    byte, and Helm installs those CRDs."""
    repo = {p.name: p.read_bytes() for p in sorted((ROOT / "crds").glob("*.yaml"))}
    chart = {p.name: p.read_bytes() for p in sorted((CHART / "crds").iterdir())}
    assert chart == repo, "run tools/helm/sync.sh"
    policies = {p.name: p.read_bytes() for p in sorted((ROOT / "policies").glob("*.hcl"))}
    assert {p.name: p.read_bytes() for p in sorted((CHART / "files/policies").iterdir())} == policies
    rendered = [m for m in helm.template(include_crds=True) if m["kind"] == "CustomResourceDefinition"]
    expected = [doc for text in repo.values() for doc in yaml.safe_load_all(text) if doc]
    assert sorted(rendered, key=_name) == sorted(expected, key=_name)


def test_default_render_is_the_operator_alone() -> None:
    objects = helm.template()
    assert {m["kind"] for m in objects} == OPERATOR_KINDS
    deployment = helm.by_kind(objects)[("Deployment", "ghostpay-operator")]
    assert deployment["spec"]["replicas"] == 2
    assert deployment["metadata"]["namespace"] == "ghostpay-system"
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] and pod["containers"][0]["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


@pytest.mark.parametrize(
    ("kustomization", "values"),
    [("manifests", []), ("manifests/namespaced", ["watchNamespace=shop"])],
)
def test_kustomize_and_the_chart_render_the_same_operator(kustomization: str, values: list[str]) -> None:
    """Object for object (same kinds and names, same rules, same pod spec), labels and the operator's own namespace
    aside: kustomize puts it in ghostpay-system and makes that Namespace, the chart uses the release's."""
    kubectl = localcluster.resolve_binaries()["kubectl"]
    built = subprocess.run(
        [str(kubectl), "kustomize", str(ROOT / kustomization)], capture_output=True, text=True, check=True, timeout=60
    )
    kustomized = [m for m in yaml.safe_load_all(built.stdout) if m and m["kind"] != "Namespace"]
    charted = helm.template(*values, namespace="elsewhere")
    assert _normalized(charted, "elsewhere") == _normalized(kustomized, "ghostpay-system")


def test_demo_render_has_the_instance_its_databases_and_secrets() -> None:
    objects = helm.by_kind(helm.template(DEMO, namespace="shop"))
    instance = objects[("GhostPayInstance", "payments")]
    assert instance["metadata"]["namespace"] == "shop"
    spec = instance["spec"]
    assert (spec["image"], spec["version"]) == ("ghostpay/ghostpay", VERSION)
    assert {name: s["nodePort"] for name, s in spec["services"].items()} == NODE_PORTS
    assert spec["database"]["secretRef"] == {"name": "payments-db", "key": "dsn"}
    assert spec["admin"]["secretRef"] == {"name": "payments-admin"}
    assert spec["redis"]["url"] == "redis://payments-redis.shop.svc:6379/0"
    assert objects[("Service", "payments-redis")]["spec"]["ports"][0]["port"] == 6379

    admin = _decoded(objects[("Secret", "payments-admin")])
    assert sorted(admin) == ["client_id", "client_secret"]
    assert len(admin["client_secret"]) >= 16  # the services refuse a shorter bootstrap secret
    database = _decoded(objects[("Secret", "payments-db")])
    assert database["dsn"] == f"postgresql://ghostpay:{database['password']}@payments-postgres.shop.svc:5432/ghostpay"
    assert objects[("Service", "payments-postgres")]["spec"]["ports"][0]["port"] == 5432

    images = {}
    for name in ("payments-postgres", "payments-redis"):  # (OpenBao's: test_demo_rotates_keys_locally_or_in_...)
        pod = objects[("Deployment", name)]["spec"]["template"]["spec"]
        [container] = pod["containers"]
        images[name] = container["image"]
        assert container["imagePullPolicy"] == "IfNotPresent"
        assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] == 999
        assert container["securityContext"]["readOnlyRootFilesystem"]
        assert all("emptyDir" in v for v in pod["volumes"])  # a demo: its data lives as long as the pod
    assert images == {"payments-postgres": "ghostpay/demo-postgres:15", "payments-redis": "ghostpay/demo-redis:7"}


def test_demo_rotates_keys_locally_or_in_its_openbao() -> None:
    local = helm.by_kind(helm.template(DEMO, namespace="shop"))
    assert local[("GhostPayInstance", "payments")]["spec"]["keyRotation"] == {
        "schedule": "0 3 * * *",
        "gracePeriod": "24h",
    }
    assert not any(kind == "Deployment" and "openbao" in name for kind, name in local)

    objects = helm.by_kind(helm.template(DEMO, "demo.vault.enabled=true", namespace="shop"))
    vault = objects[("GhostPayInstance", "payments")]["spec"]["keyRotation"]["vault"]
    assert vault == {
        "address": "https://payments-openbao.shop.svc:8200",  # the services refuse plain HTTP off loopback
        "role": "ghostpay",
        "transitKey": "ghostpay-jwt",
        "caSecretRef": {"name": "payments-openbao-tls", "key": "ca.crt"},
    }
    assert objects[("Service", "payments-openbao")]["spec"]["ports"][0]["port"] == 8200
    _assert_openbao_certificate(objects[("Secret", "payments-openbao-tls")], "payments-openbao.shop.svc")
    policies = objects[("ConfigMap", "payments-openbao-policies")]["data"]
    assert policies == {p.name: p.read_text() for p in (ROOT / "policies").glob("*.hcl")}
    setup = objects[("ConfigMap", "payments-openbao-setup")]["data"]["openbao-demo.sh"]
    assert setup == (CHART / "files/openbao-demo.sh").read_text()
    review = next(m for (kind, _), m in objects.items() if kind == "ClusterRoleBinding" and "openbao" in _)
    assert review["roleRef"]["name"] == "system:auth-delegator"
    assert review["subjects"] == [{"kind": "ServiceAccount", "name": "payments-openbao", "namespace": "shop"}]
    pod = objects[("Deployment", "payments-openbao")]["spec"]["template"]["spec"]
    assert (pod["serviceAccountName"], pod["automountServiceAccountToken"]) == ("payments-openbao", True)
    assert pod["containers"][0]["image"] == "ghostpay/demo-openbao:2.7.2"
    assert pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"]


def _assert_openbao_certificate(secret: dict[str, Any], host: str) -> None:
    """The demo OpenBao's certificate names its Service's host and is signed by the ca.crt beside it."""
    data = {key: base64.b64decode(value) for key, value in secret["data"].items()}
    assert secret["type"] == "kubernetes.io/tls" and sorted(data) == ["ca.crt", "tls.crt", "tls.key"]
    ca, cert = x509.load_pem_x509_certificate(data["ca.crt"]), x509.load_pem_x509_certificate(data["tls.crt"])
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName
    )
    assert host in names
    cert.verify_directly_issued_by(ca)


def test_demo_prometheus_is_opt_in_and_the_instance_is_analysed_by_it() -> None:
    """demo.prometheus.enabled: a Prometheus finding the service pods (both colours) and the operator's through two
    headless Services' DNS records, with no API access at all, and the instance released by Canary with its
    analysis pointing at it. Without it the demo has neither."""
    plain = helm.by_kind(helm.template(DEMO, namespace="shop"))
    assert "release" not in plain[("GhostPayInstance", "payments")]["spec"]
    assert not any("prometheus" in name or "metrics" in name for _, name in plain)

    objects = helm.by_kind(helm.template(DEMO, PROMETHEUS, namespace="shop"))
    release = objects[("GhostPayInstance", "payments")]["spec"]["release"]
    assert release == {"strategy": "Canary", "analysis": {"prometheusUrl": "http://payments-prometheus.shop.svc:9090"}}
    assert objects[("Service", "payments-prometheus")]["spec"]["ports"][0]["port"] == 9090
    pod = objects[("Deployment", "payments-prometheus")]["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["image"] == "ghostpay/demo-prometheus:2.42.0"
    assert (pod["automountServiceAccountToken"], pod.get("serviceAccountName")) == (False, None)
    assert pod["securityContext"]["runAsNonRoot"] and container["securityContext"]["readOnlyRootFilesystem"]
    assert all("emptyDir" in v or "configMap" in v for v in pod["volumes"])
    rbac = {key for key in objects if key[0] in {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}}
    assert rbac == {("ClusterRole", "ghostpay-operator"), ("ClusterRoleBinding", "ghostpay-operator")}  # no more

    config = yaml.safe_load(objects[("ConfigMap", "payments-prometheus")]["data"]["prometheus.yml"])
    names = {job["job_name"]: job["dns_sd_configs"][0]["names"] for job in config["scrape_configs"]}
    assert names == {
        "ghostpay": ["_metrics._tcp.payments-metrics.shop.svc"],
        "ghostpay-operator": ["_metrics._tcp.payments-operator-metrics.shop.svc"],
    }
    services = objects[("Service", "payments-metrics")]["spec"]
    assert (services["clusterIP"], services["publishNotReadyAddresses"]) == ("None", True)
    assert services["ports"] == [{"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"}]
    # The labels the operator puts on every service pod of the instance, whatever its colour or version.
    assert services["selector"] == {
        "app.kubernetes.io/name": "ghostpay",
        "app.kubernetes.io/instance": "payments",
        "app.kubernetes.io/managed-by": "ghostpay-operator",
    }
    operator = objects[("Service", "payments-operator-metrics")]["spec"]
    deployment = objects[("Deployment", "ghostpay-operator")]["spec"]["template"]
    assert operator["selector"].items() <= deployment["metadata"]["labels"].items()
    assert "metrics" in {p["name"] for p in deployment["spec"]["containers"][0]["ports"]}


def test_demo_prometheus_selects_the_pods_the_operator_builds() -> None:
    """The headless Service's selector is a subset of the labels of the operator's own pod template (so both colours
    and every version are scraped), and those pods name the port `metrics`."""
    objects = helm.by_kind(helm.template(DEMO, PROMETHEUS, namespace="shop"))
    instance = objects[("GhostPayInstance", "payments")]
    parsed = specs.parse(instance)
    selector = objects[("Service", "payments-metrics")]["spec"]["selector"]
    for color in ("blue", "green"):
        template = workloads.deployment(parsed, "charges", color, 2)["spec"]["template"]
        assert selector.items() <= template["metadata"]["labels"].items()
        assert "metrics" in {p["name"] for p in template["spec"]["containers"][0]["ports"]}


def test_demo_secrets_are_random_per_render() -> None:
    """helm template sees no cluster, so each render makes new ones; `lookup` keeps them on a real upgrade
    (tests/helm/test_install.py)."""
    first, second = (helm.by_kind(helm.template(DEMO))[("Secret", "payments-admin")] for _ in range(2))
    assert _decoded(first)["client_secret"] != _decoded(second)["client_secret"]


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        ("replicas=two", "replicas"),
        ("demo.enabled=yes", "demo/enabled"),
        ("demo.nodePorts.auth=8080", "demo/nodePorts/auth"),
        ("replica=2", "replica"),  # a misspelt key is refused, not ignored
        ("image.pullPolicy=Sometimes", "image/pullPolicy"),
        ("watchNamespace=Not_A_Namespace", "watchNamespace"),
        ("demo.vault.enabled=1", "demo/vault/enabled"),
        ("demo.prometheus.scrapeInterval=5", "demo/prometheus/scrapeInterval"),
    ],
)
def test_values_schema_refuses_a_bad_value(value: str, complaint: str) -> None:
    result = helm.run("template", "ghostpay", str(CHART), "--set", value)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert complaint in result.stderr, result.stderr


def test_every_value_is_documented() -> None:
    """A comment above every key of values.yaml, and a description on every property of values.schema.json."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    previous = ""
    for line in lines:
        if re.match(r"^\s*[A-Za-z][A-Za-z0-9]*:", line):
            assert previous.lstrip().startswith("#"), f"values.yaml: no comment above {line.strip()!r}"
        if line.strip():
            previous = line
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert _undescribed(schema["properties"]) == []


def _undescribed(properties: dict[str, Any], path: str = "") -> list[str]:
    missing = []
    for name, node in properties.items():
        if "description" not in node:
            missing.append(path + name)
        missing += _undescribed(node.get("properties", {}), f"{path}{name}.")
    return missing


def _decoded(secret: Manifest) -> dict[str, str]:
    return {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}


def _name(manifest: Manifest) -> str:
    return str(manifest["metadata"]["name"])


def _normalized(manifests: list[Manifest], own_namespace: str) -> dict[tuple[str, str], Manifest]:
    """Objects by kind and name, without labels, with the operator's own namespace named OWN and none on
    cluster-scoped objects (kustomize sets one on the ClusterKopfPeering; the API server has no use for it)."""
    result = {}
    for manifest in manifests:
        copied = copy.deepcopy(manifest)
        copied["metadata"].pop("labels", None)
        if copied["kind"].startswith("Cluster"):  # kustomize cannot know a custom kind is cluster-scoped
            copied["metadata"].pop("namespace", None)
        if copied["metadata"].get("namespace") == own_namespace:
            copied["metadata"]["namespace"] = "OWN"
        for subject in copied.get("subjects", []):
            if subject.get("namespace") == own_namespace:
                subject["namespace"] = "OWN"
        result[(copied["kind"], _name(copied))] = copied
    return result


def test_sync_script_copies_every_crd_and_policy() -> None:
    """tools/helm/sync.sh is what keeps the copies in step: it names how many files it copied."""
    result = subprocess.run(
        ["bash", str(ROOT / "tools/helm/sync.sh")], capture_output=True, text=True, check=True, timeout=60
    )
    crds, policies = len(list((ROOT / "crds").glob("*.yaml"))), len(list((ROOT / "policies").glob("*.hcl")))
    assert f"copied {crds} CRD files and {policies} policies" in result.stderr
