"""GhostPay's Grafana dashboards (`monitoring/grafana/*.json`), written from the panel lists below so that every
dashboard shares one layout, one datasource variable and one namespace filter.

`python -m ghostpay_devtools.dashboards [ROOT]` writes them (`make dashboards`); a test compares the committed
files with what this renders, and another evaluates every panel's query against a real Prometheus that scraped
running services. Each dashboard picks its Prometheus through the `datasource` variable (no datasource is named
in the JSON), and filters on `namespace` (the label a Kubernetes scrape adds; `.*` matches a scrape without it).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DIRECTORY = Path("monitoring/grafana")
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
NS = 'namespace=~"$namespace"'
API = f'{NS},route!~"/healthz|/readyz|/metrics"'  # the SLO's requests: every route but probes and scrapes
CHARGE = f'{NS},service="charges",route="/charges",method="POST"'
SERVER_ERRORS = f'{API},status=~"5.."'
OPERATOR = 'resource_namespace=~"$namespace"'


@dataclass(frozen=True)
class Panel:
    title: str
    queries: tuple[tuple[str, str], ...]  # (PromQL, legend)
    unit: str = "short"
    kind: str = "timeseries"  # or stat, table
    description: str = ""


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    panels: tuple[Panel, ...]
    namespace_metric: str = "ghostpay_build_info"
    tags: tuple[str, ...] = field(default=("ghostpay",))


def _q(expr: str, legend: str = "") -> tuple[str, str]:
    return expr, legend


def _quantile(q: float, selector: str, by: str = "") -> str:
    group = f"le{', ' + by if by else ''}"
    buckets = f"ghostpay_http_request_duration_seconds_bucket{{{selector}}}"
    return f"histogram_quantile({q}, sum by ({group}) (rate({buckets}[$__rate_interval])))"


def _share(part: str, whole: str, by: str = "", window: str = "$__rate_interval") -> str:
    """The share of requests matching `part` among those matching `whole` (HTTP request selectors): 0, not an
    empty panel, while no request matched `part` (no 5xx yet has no series to divide)."""
    group = f" by ({by})" if by else ""

    def rate(selector: str) -> str:
        return f"sum{group} (rate(ghostpay_http_requests_total{{{selector}}}[{window}]))"

    return f"({rate(part)} or {rate(whole)} * 0) / {rate(whole)}"


SERVICE_RED = Dashboard(
    "ghostpay-service-red",
    "GhostPay / Services (RED)",
    "Rate, errors and duration of every service's API, and what they depend on.",
    (
        Panel(
            "Requests per second by service",
            (_q(f"sum by (service) (rate(ghostpay_http_requests_total{{{API}}}[$__rate_interval]))", "{{service}}"),),
            "reqps",
        ),
        Panel(
            "5xx share of API requests",
            (
                _q(_share(SERVER_ERRORS, API), "5xx share"),
            ),
            "percentunit",
            description="The page fires above 1% over 5 minutes (GhostPayHighErrorRate).",
        ),
        Panel(
            "Requests by status",
            (_q(f"sum by (status) (rate(ghostpay_http_requests_total{{{API}}}[$__rate_interval]))", "{{status}}"),),
            "reqps",
        ),
        Panel(
            "p50 / p99 latency by service",
            (
                _q(_quantile(0.5, API, "service"), "p50 {{service}}"),
                _q(_quantile(0.99, API, "service"), "p99 {{service}}"),
            ),
            "s",
        ),
        Panel(
            "POST /charges p99 (SLO 300 ms)",
            (_q(_quantile(0.99, CHARGE), "p99"),),
            "s",
        ),
        Panel(
            "Slowest routes (p99)",
            (_q(f"topk(5, {_quantile(0.99, API, 'service, route, method')})", "{{method}} {{route}}"),),
            "s",
        ),
        Panel(
            "Availability SLO: error budget burn rate (1 h)",
            (
                _q(f"{_share(SERVER_ERRORS, API, window='1h')} / 0.001", "burn rate"),
            ),
            description="1 = spending the 99.9% budget exactly over 30 days; the fast page is at 14.4.",
        ),
        Panel(
            "Database pool connections",
            (
                _q(f"sum by (state) (ghostpay_db_pool_connections{{{NS}}})", "{{state}}"),
                _q(f"sum(ghostpay_db_pool_max_connections{{{NS}}})", "max"),
            ),
        ),
        Panel(
            "Outbox lag (oldest unrelayed event)",
            (_q(f"max(ghostpay_outbox_oldest_unrelayed_age_seconds{{{NS}}})", "age"),),
            "s",
        ),
    ),
)

PAYMENTS = Dashboard(
    "ghostpay-payments",
    "GhostPay / Payments",
    "Cards issued, charges approved and declined by reason, approved volume by currency.",
    (
        Panel(
            "Cards issued per second",
            (_q(f"sum(rate(ghostpay_cards_issued_total{{{NS}}}[$__rate_interval]))", "issued"),),
            "ops",
        ),
        Panel(
            "Charges per second by outcome",
            (_q(f"sum by (status) (rate(ghostpay_charges_total{{{NS}}}[$__rate_interval]))", "{{status}}"),),
            "ops",
        ),
        Panel(
            "Declines per second by reason",
            (
                _q(
                    f'sum by (decline_code) (rate(ghostpay_charges_total{{{NS},status="declined"}}[$__rate_interval]))',
                    "{{decline_code}}",
                ),
            ),
            "ops",
        ),
        Panel(
            "Approval rate",
            (
                _q(
                    f'sum(rate(ghostpay_charges_total{{{NS},status="approved"}}[$__rate_interval])) '
                    f"/ sum(rate(ghostpay_charges_total{{{NS}}}[$__rate_interval]))",
                    "approved share",
                ),
            ),
            "percentunit",
        ),
        Panel(
            "Approved volume per second by currency (major units)",
            (
                _q(
                    f"sum by (currency) (rate(ghostpay_charged_amount_total{{{NS}}}[$__rate_interval]))",
                    "{{currency}}",
                ),
            ),
        ),
        Panel(
            "Approved volume over the range by currency",
            (_q(f"sum by (currency) (increase(ghostpay_charged_amount_total{{{NS}}}[$__range]))", "{{currency}}"),),
            kind="table",
        ),
    ),
)

RELEASES = Dashboard(
    "ghostpay-releases",
    "GhostPay / Releases",
    "Which versions serve the traffic, and how each one does: what a release's analysis compares.",
    (
        Panel(
            "Traffic share by version",
            (
                _q(
                    f"sum by (version) (rate(ghostpay_http_requests_total{{{API}}}[$__rate_interval])) "
                    "/ ignoring(version) group_left "
                    f"sum(rate(ghostpay_http_requests_total{{{API}}}[$__rate_interval]))",
                    "{{version}}",
                ),
            ),
            "percentunit",
        ),
        Panel(
            "Processes by release and build",
            (_q(f"count by (release, version) (ghostpay_build_info{{{NS}}})", "{{release}} (build {{version}})"),),
            kind="table",
        ),
        Panel(
            "5xx share by version (the analysis' error rate)",
            (
                _q(_share(SERVER_ERRORS, API, by="version"), "{{version}}"),
            ),
            "percentunit",
        ),
        Panel(
            "Decline responses share by version",
            (
                _q(_share(f'{CHARGE},status="402"', CHARGE, by="version"), "{{version}}"),
            ),
            "percentunit",
            description="POST /charges answered 402 (declined) over all its answers, per version.",
        ),
        Panel(
            "Releases by outcome (operator)",
            (
                _q(
                    "sum by (resource_name, outcome) "
                    f"(increase(ghostpay_operator_releases_total{{{OPERATOR}}}[$__range]))",
                    "{{resource_name}} {{outcome}}",
                ),
            ),
            kind="table",
        ),
    ),
)

KEYS_AND_LIMITS = Dashboard(
    "ghostpay-keys-limits",
    "GhostPay / Keys and limits",
    "Signing keys (age, active kid, rotations) and the rate limiter (429s, Redis latency, failing open).",
    (
        Panel(
            "Signing key age and its limit",
            (
                _q(f"max(ghostpay_signing_key_age_seconds{{{NS}}})", "age"),
                _q(f"max(ghostpay_signing_key_max_age_seconds{{{NS}}})", "max age"),
            ),
            "s",
        ),
        Panel(
            "Active signing kid (processes)",
            (_q(f"count by (kid) (ghostpay_signing_key_info{{{NS}}})", "{{kid}}"),),
            kind="table",
            description="More than one kid for longer than a refresh interval: some processes missed a rotation.",
        ),
        Panel(
            "Key versions seen and refresh failures",
            (
                _q(f"sum(increase(ghostpay_key_versions_published_total{{{NS}}}[$__range]))", "versions seen"),
                _q(f"sum(increase(ghostpay_key_refresh_failures_total{{{NS}}}[$__range]))", "refresh failures"),
            ),
        ),
        Panel(
            "Rate-limited requests per second by role",
            (_q(f"sum by (role) (rate(ghostpay_rate_limited_total{{{NS}}}[$__rate_interval]))", "{{role}}"),),
            "reqps",
        ),
        Panel(
            "429 share of API requests",
            (
                _q(_share(f'{API},status="429"', API), "429 share"),
            ),
            "percentunit",
        ),
        Panel(
            "Rate limiter Redis round trip (p50 / p99)",
            (
                _q(
                    "histogram_quantile(0.5, sum by (le) "
                    f"(rate(ghostpay_rate_limiter_duration_seconds_bucket{{{NS}}}[$__rate_interval])))",
                    "p50",
                ),
                _q(
                    "histogram_quantile(0.99, sum by (le) "
                    f"(rate(ghostpay_rate_limiter_duration_seconds_bucket{{{NS}}}[$__rate_interval])))",
                    "p99",
                ),
            ),
            "s",
        ),
        Panel(
            "Limiter failing open (Redis unreachable)",
            (_q(f"sum(rate(ghostpay_rate_limiter_errors_total{{{NS}}}[$__rate_interval]))", "let through"),),
            "reqps",
        ),
    ),
)

OPERATOR_DASHBOARD = Dashboard(
    "ghostpay-operator",
    "GhostPay / Operator",
    "The operator: is it up, does it reconcile every instance, what releases did.",
    (
        Panel("Operator up", (_q('up{job="ghostpay-operator"}', "{{instance}}"),), kind="stat"),
        Panel(
            "Seconds since the last successful reconcile",
            (
                _q(
                    f"time() - ghostpay_operator_last_reconcile_timestamp_seconds{{{OPERATOR}}}",
                    "{{resource_namespace}}/{{resource_name}}",
                ),
            ),
            "s",
            description="GhostPayOperatorNotReconciling pages after 10 minutes.",
        ),
        Panel(
            "Reconciles per second by result",
            (
                _q(
                    f"sum by (result) (rate(ghostpay_operator_reconciles_total{{{OPERATOR}}}[$__rate_interval]))",
                    "{{result}}",
                ),
            ),
            "ops",
        ),
        Panel(
            "Reconcile errors by reason",
            (
                _q(
                    "sum by (reason) "
                    f'(increase(ghostpay_operator_reconciles_total{{{OPERATOR},result="error"}}[$__range]))',
                    "{{reason}}",
                ),
            ),
            kind="table",
        ),
        Panel(
            "Releases by outcome",
            (
                _q(
                    f"sum by (resource_namespace, resource_name, outcome) "
                    f"(increase(ghostpay_operator_releases_total{{{OPERATOR}}}[$__range]))",
                    "{{resource_namespace}}/{{resource_name}} {{outcome}}",
                ),
            ),
            kind="table",
        ),
    ),
    namespace_metric="ghostpay_operator_last_reconcile_timestamp_seconds",
)

DASHBOARDS = {
    "service-red.json": SERVICE_RED,
    "payments.json": PAYMENTS,
    "releases.json": RELEASES,
    "keys-and-limits.json": KEYS_AND_LIMITS,
    "operator.json": OPERATOR_DASHBOARD,
}


def _panel(panel: Panel, index: int) -> dict[str, Any]:
    width = 24 if panel.kind == "table" else 12
    rendered: dict[str, Any] = {
        "id": index + 1,
        "type": panel.kind,
        "title": panel.title,
        "datasource": DATASOURCE,
        "gridPos": {"h": 8, "w": width, "x": 0 if width == 24 else (index % 2) * 12, "y": index * 8},
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "options": {},
        "targets": [
            {
                "refId": chr(ord("A") + n),
                "datasource": DATASOURCE,
                "expr": expr,
                "legendFormat": legend,
                **({"instant": True, "format": "table"} if panel.kind == "table" else {"range": True}),
            }
            for n, (expr, legend) in enumerate(panel.queries)
        ],
    }
    if panel.description:
        rendered["description"] = panel.description
    return rendered


def _variables(dashboard: Dashboard) -> list[dict[str, Any]]:
    return [
        {
            "name": "datasource",
            "label": "Prometheus",
            "type": "datasource",
            "query": "prometheus",
            "current": {},
            "hide": 0,
        },
        {
            "name": "namespace",
            "label": "Namespace",
            "type": "query",
            "datasource": DATASOURCE,
            "query": {"query": f"label_values({dashboard.namespace_metric}, namespace)", "refId": "namespace"},
            "definition": f"label_values({dashboard.namespace_metric}, namespace)",
            "includeAll": True,
            "allValue": ".*",
            "multi": True,
            "current": {"text": "All", "value": "$__all"},
            "refresh": 2,
            "hide": 0,
        },
    ]


def dashboard_json(dashboard: Dashboard) -> dict[str, Any]:
    return {
        "uid": dashboard.uid,
        "title": dashboard.title,
        "description": dashboard.description,
        "tags": list(dashboard.tags),
        "editable": True,
        "schemaVersion": 39,
        "time": {"from": "now-1h", "to": "now"},
        "refresh": "30s",
        "templating": {"list": _variables(dashboard)},
        "panels": [_panel(panel, index) for index, panel in enumerate(dashboard.panels)],
        "links": [],
        "annotations": {"list": []},
    }


def render() -> dict[str, str]:
    """{file name: JSON text} of every dashboard."""
    return {name: json.dumps(dashboard_json(d), indent=2) + "\n" for name, d in DASHBOARDS.items()}


def write(root: Path) -> list[Path]:
    directory = root / DIRECTORY
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render().items():
        (directory / name).write_text(text)
        written.append(directory / name)
    return written


if __name__ == "__main__":
    for path in write(Path(sys.argv[1] if len(sys.argv) > 1 else ".")):
        print(path)
