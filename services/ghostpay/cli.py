"""The `ghostpay` command line: `dev`, `serve`, `migrate`, `keys`, `openapi`, `operator`, `status`, `cluster`."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import click
import prometheus_client
import uvicorn
import yaml
from opentelemetry.sdk.trace import TracerProvider
from pydantic import ValidationError

from ghostpay import app as app_module
from ghostpay import dev as dev_module
from ghostpay.core import db, telemetry, tracing
from ghostpay.core.keys import open_backend, ring
from ghostpay.core.keys.local import KeyStoreError
from ghostpay.core.keys.ring import KeysUnavailable
from ghostpay.core.settings import Settings


def _ignore_signal(signum: int, frame: object) -> None:
    """Stands in as the "original" handler while uvicorn runs: uvicorn re-raises the SIGINT/SIGTERM it stopped
    on once it has shut down, and with the default handlers that would kill the process before `ghostpay dev`
    stops its PostgreSQL and Redis (and make a clean stop exit non-zero)."""


class _SidecarServer(uvicorn.Server):
    """A server run beside the main one in its event loop: the main server owns SIGINT/SIGTERM and stops this one."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class _ServerWithMetrics(uvicorn.Server):
    """The service on its port, and the Prometheus metrics (prometheus_client's own ASGI app) on an already bound
    socket of their own, in the same event loop: the metrics start first and stop last."""

    def __init__(self, config: uvicorn.Config, metrics: _SidecarServer, metrics_socket: socket.socket) -> None:
        super().__init__(config)
        self.metrics, self.metrics_socket = metrics, metrics_socket

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        metrics = asyncio.create_task(self.metrics.serve([self.metrics_socket]), name="metrics-server")
        try:
            await super().serve(sockets)
        finally:
            self.metrics.should_exit = True
            await metrics


def _server_config(app: Any, host: str, port: int, **extra: Any) -> uvicorn.Config:
    # proxy_headers off: X-Forwarded-For is trusted only from GHOSTPAY_TRUSTED_PROXIES (the app applies it), never
    # by default — uvicorn's own default would trust it from 127.0.0.1.
    return uvicorn.Config(
        app, host=host, port=port, log_config=None, access_log=False, server_header=False, proxy_headers=False, **extra
    )


def freeze_startup_objects() -> None:
    """Move every object alive now (the imported modules, the app, its routes and models: some 100,000) out of the
    garbage collector's reach. They live as long as the process, yet each full collection scanned them all with
    the event loop stopped: 45-65 ms per pause here, several a minute under load, which made the charge path's p99
    (bench/: the service and the floor alike). Frozen, a full collection scans only what came after: 2-4 ms."""
    gc.collect()  # what start-up already dropped is freed, not kept for good
    gc.freeze()


def run_server(app: Any, host: str, port: int, metrics_port: int | None = None, shutdown_timeout: int = 10) -> None:
    """Serve `app` until SIGINT/SIGTERM, then let requests in flight finish for up to `shutdown_timeout` s; with
    `metrics_port`, the metrics too, on that port. The benchmark's floor app (`bench.floor_app`) is served by this
    too, so both stand on the same server stack."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _ignore_signal)
    config = _server_config(app, host, port, lifespan="on", timeout_graceful_shutdown=shutdown_timeout)
    freeze_startup_objects()
    if metrics_port is None:
        uvicorn.Server(config).run()
        return
    metrics = _SidecarServer(_server_config(prometheus_client.make_asgi_app(), host, metrics_port, lifespan="off"))
    # Bound before anything starts: a taken metrics port stops the process at once (uvicorn logs it and exits 1).
    metrics_socket = metrics.config.bind_socket()
    _ServerWithMetrics(config, metrics, metrics_socket).run()


def _tracer_provider(service: str) -> TracerProvider | None:
    """The OTLP trace export the OTEL_* variables ask for, or None (off); a setting this build cannot honour is a
    usage error at start-up."""
    try:
        return tracing.provider_from_environment(service)
    except tracing.TracingConfigError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group()
def main() -> None:
    """GhostPay: single-use virtual cards, and the operator that runs them."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--data-dir", default=".ghostpay", show_default=True, type=click.Path(path_type=Path))
@click.option(
    "--jaeger",
    "with_jaeger",
    is_flag=True,
    help="Also run Jaeger (built from its Go module the first time) and send it the traces; UI on 127.0.0.1:16686",
)
def dev(host: str, port: int, data_dir: Path, with_jaeger: bool) -> None:
    """Run all four services in one process on embedded PostgreSQL and Redis kept in DATA_DIR."""
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    with _jaeger_for_dev(data_dir) if with_jaeger else contextlib.nullcontext():
        _dev(host, port, data_dir)


@contextlib.contextmanager
def _jaeger_for_dev(data_dir: Path) -> Iterator[None]:
    """A Jaeger beside `ghostpay dev`, the OTLP export pointed at it through the standard variables."""
    try:
        from ghostpay_devtools import jaeger
    except ModuleNotFoundError as exc:  # the container image leaves the dev tools out
        raise click.ClickException("--jaeger needs a checkout of the project (its dev tools build Jaeger).") from exc
    click.echo("starting Jaeger (the first time, tools/jaeger/build.sh compiles it: minutes) ...", err=True)
    try:
        running = jaeger.start(data_dir / "jaeger", ui_port=jaeger.DEFAULT_UI_PORT)
    except jaeger.JaegerError as exc:
        raise click.ClickException(str(exc)) from exc
    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = running.otlp_endpoint
    os.environ.setdefault("OTEL_SERVICE_NAME", "ghostpay-dev")
    click.echo(f"traces: {running.ui_url} (Jaeger UI; search service ghostpay-dev)", err=True)
    try:
        yield
    finally:
        running.stop()


def _dev(host: str, port: int, data_dir: Path) -> None:
    overrides: dict[str, Any] = {"environment": os.environ.get("GHOSTPAY_ENVIRONMENT", "development")}
    postgres = redis = None
    try:
        if not os.environ.get("GHOSTPAY_DATABASE_URL"):
            postgres = dev_module.EmbeddedPostgres(data_dir / "postgres")
            overrides["database_url"] = postgres.start()
        if not os.environ.get("GHOSTPAY_REDIS_URL"):
            redis = dev_module.EmbeddedRedis(data_dir / "redis")
            overrides["redis_url"] = redis.start()
    except dev_module.EmbeddedServerMissing as exc:
        if postgres is not None:
            postgres.stop()
        raise click.ClickException(str(exc)) from exc
    if not os.environ.get("GHOSTPAY_VAULT_ADDR"):
        overrides.update(dev_module.local_keys(data_dir))
    if not os.environ.get("GHOSTPAY_ADMIN_CLIENT_ID"):
        creds = dev_module.admin_credentials(data_dir)
        overrides.update(admin_client_id=creds.client_id, admin_client_secret=creds.client_secret)
        if creds.created:
            click.echo(
                f"admin client_id:     {creds.client_id}\nadmin client_secret: {creds.client_secret}\n"
                f"(shown once; kept in {data_dir / 'admin-credentials.json'})",
                err=True,
            )
    settings = Settings(**overrides)
    telemetry.configure_logging(settings.log_level)
    try:
        asyncio.run(db.migrate(settings.database_url))
        run_server(app_module.create_app(settings, tracer_provider=_tracer_provider("dev")), host, port)
    finally:
        if redis is not None:
            redis.stop()
        if postgres is not None:
            postgres.stop()


@main.command()
@click.argument("service", type=click.Choice(app_module.ALL_SERVICES))
@click.option("--host", envvar="GHOSTPAY_HOST", default="0.0.0.0", show_default=True)  # noqa: S104
@click.option("--port", envvar="GHOSTPAY_PORT", default=8000, show_default=True, type=int)
@click.option(
    "--metrics-port",
    envvar="GHOSTPAY_METRICS_PORT",
    default=9090,
    show_default=True,
    type=click.IntRange(1, 65535),
    help="Where GET /metrics is served (not on PORT, which the operator's Services expose)",
)
@click.option(
    "--shutdown-timeout",
    envvar="GHOSTPAY_SHUTDOWN_TIMEOUT_SECONDS",
    default=10,
    show_default=True,
    type=click.IntRange(1, 600),
    help="After SIGTERM, how long requests in flight may take to finish (the operator sizes the pod's grace to it)",
)
def serve(service: str, host: str, port: int, metrics_port: int, shutdown_timeout: int) -> None:
    """Run one service (the container entrypoint); configuration comes from GHOSTPAY_* variables."""
    settings = Settings()
    telemetry.configure_logging(settings.log_level)
    chosen = [cast(app_module.ServiceName, service)]
    app = app_module.create_app(settings, chosen, metrics_route=False, tracer_provider=_tracer_provider(service))
    run_server(app, host, port, metrics_port, shutdown_timeout)


@main.command()
@click.option("--out", type=click.Path(path_type=Path), help="Write to this file instead of standard output")
def openapi(out: Path | None) -> None:
    """Print the OpenAPI 3.1 document of all four services (as committed in services/openapi.yaml)."""
    document = openapi_yaml(app_module.create_app(Settings()).openapi())
    if out is None:
        click.echo(document, nl=False)
    else:
        out.write_text(document)


def openapi_yaml(document: dict[str, Any]) -> str:
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


@main.command()
@click.option("--namespace", "-n", default=None, help="Watch only this namespace (default: the whole cluster)")
@click.option("--verbose", is_flag=True)
@click.option("--host", envvar="GHOSTPAY_HOST", default="0.0.0.0", show_default=True, help="Health endpoint address")  # noqa: S104
@click.option("--port", envvar="GHOSTPAY_PORT", default=8080, show_default=True, type=int, help="Health endpoint port")
@click.option(
    "--metrics-port",
    envvar="GHOSTPAY_METRICS_PORT",
    default=9090,
    show_default=True,
    type=click.IntRange(1, 65535),
    help="Where the operator's own GET /metrics is served (on HOST)",
)
def operator(namespace: str | None, verbose: bool, host: str, port: int, metrics_port: int) -> None:
    """Run the GhostPay operator (kopf) against the current kubeconfig; GET /healthz on HOST:PORT, GET /metrics on
    HOST:METRICS_PORT."""
    from ghostpay_operator import main as operator_main

    operator_main.run(namespace, verbose, f"{host}:{port}", metrics_port)


@main.command()
@click.argument("name")
@click.option("--namespace", "-n", default="default", show_default=True)
@click.option("--watch", "-w", is_flag=True, help="Refresh every 2 seconds until interrupted")
def status(name: str, namespace: str, watch: bool) -> None:
    """Show a GhostPayInstance as a tree: phase and reason, the release, each service's colours and pods."""
    from ghostpay_operator import main as operator_main

    with contextlib.suppress(KeyboardInterrupt):
        try:
            operator_main.show_status(name, namespace, watch)
        except Exception as exc:  # no kubeconfig, no such instance, API unreachable: say which, without a trace
            raise click.ClickException(f"cannot show GhostPayInstance {namespace}/{name}: {exc}") from exc


@main.command()
def migrate() -> None:
    """Apply database migrations (idempotent; safe to run from two pods at once)."""
    settings = Settings()
    telemetry.configure_logging(settings.log_level)
    applied = asyncio.run(db.migrate(settings.database_url))
    click.echo(f"applied {len(applied)} migration(s): {', '.join(applied) or 'none needed'}")


@main.group()
def keys() -> None:
    """Token signing keys and PAN key-encryption keys: in Vault transit (GHOSTPAY_VAULT_ADDR) or local."""


def _key_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Settings for `ghostpay keys`: Vault from the environment, else the store of the `ghostpay dev` in DIR
    (which must exist: these commands never create a store)."""
    if not os.environ.get("GHOSTPAY_VAULT_ADDR"):
        try:
            overrides = {**dev_module.local_keys(data_dir.resolve(), create=False), **overrides}
        except FileNotFoundError as exc:
            raise click.ClickException(
                f"{data_dir} is not a `ghostpay dev` data directory (no keys-passphrase); pass the --data-dir of "
                "a ghostpay dev, or set GHOSTPAY_KEYS_DIR and GHOSTPAY_KEYS_PASSPHRASE, or GHOSTPAY_VAULT_ADDR."
            ) from exc
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise click.ClickException(str(exc)) from exc


_keys_data_dir = click.option(
    "--data-dir",
    default=".ghostpay",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The data directory of `ghostpay dev`, whose local key store to use (ignored with GHOSTPAY_VAULT_ADDR)",
)


@keys.command("rotate")
@_keys_data_dir
@click.option("--grace-period", help="How long superseded versions still verify, e.g. 24h [GHOSTPAY_KEY_GRACE_PERIOD]")
@click.option(
    "--kube-secret",
    metavar="NAME",
    help="Rotate the local key store the operator keeps in the Secrets NAME-public, NAME-signing and NAME-pan",
)
@click.option("--namespace", "-n", default="default", show_default=True, help="Namespace of --kube-secret")
def keys_rotate(data_dir: Path, grace_period: str | None, kube_secret: str | None, namespace: str) -> None:
    """Publish a new signing key version (it signs once verifiers have refreshed) and a new PAN key-encryption
    version; retire signing versions whose grace period is over. A running `ghostpay dev` picks it up."""
    settings = _key_settings(data_dir, **({"key_grace_period": grace_period} if grace_period else {}))
    grace = settings.key_grace_period
    delay = timedelta(seconds=settings.key_activation_delay_seconds)
    try:
        if kube_secret:
            from ghostpay_operator import keysecret

            if settings.keys_passphrase is None:
                raise KeyStoreError("Rotating the key store needs its passphrase (GHOSTPAY_KEYS_PASSPHRASE).")
            passphrase = settings.keys_passphrase.get_secret_value()
            keysecret.rotate_secrets(namespace, kube_secret, grace.total_seconds(), passphrase, delay.total_seconds())
            click.echo(f"rotated the key store in Secrets {namespace}/{kube_secret}-{{public,signing,pan}}")
            return
        backend = open_backend(settings, create=False)
        retired = backend.rotate(grace, delay)
        newest = backend.public_keys()[-1]
    except (KeysUnavailable, KeyStoreError, ValueError) as exc:
        raise click.ClickException(f"key rotation failed: {exc}") from exc
    click.echo(f"published {newest.kid}; it signs from {(newest.created_at + delay).isoformat(timespec='seconds')}")
    click.echo(f"retired: {', '.join(retired) or 'none'} (grace period {grace})")


@keys.command("list")
@_keys_data_dir
def keys_list(data_dir: Path) -> None:
    """The published signing key versions (the JWKS), and which one signs now."""
    settings = _key_settings(data_dir)
    try:
        published = open_backend(settings, create=False).public_keys()
    except (KeysUnavailable, KeyStoreError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    signer = ring.signing_key(published, datetime.now(UTC), timedelta(seconds=settings.key_activation_delay_seconds))
    for key in published:
        mark = "signing" if key.kid == signer.kid else "verifying"
        click.echo(f"{key.kid}  v{key.version}  {key.created_at.isoformat(timespec='seconds')}  {mark}")


_cluster_dir = click.option(
    "--dir",
    "directory",
    default=None,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the cluster keeps its state  [default: .ghostpay/cluster, with --kind .ghostpay/kind]",
)
_kind_flag = click.option(
    "--kind",
    "use_kind",
    is_flag=True,
    help="A real cluster of Docker containers made by kind (cluster `ghostpay`: 1 control plane, 2 zoned workers)",
)


@main.group()
def cluster() -> None:
    """A local Kubernetes cluster: simulated (real control plane, KWOK nodes) or, with --kind, real (kind)."""


@cluster.command("up")
@_cluster_dir
@_kind_flag
def cluster_up(directory: Path | None, use_kind: bool) -> None:
    """Start the cluster in DIR (or reuse the one running there) and write DIR/kubeconfig."""
    if use_kind:
        from ghostpay_devtools import kindcluster, kindnetwork

        try:
            kind_cluster = kindcluster.up(directory or kindcluster.DEFAULT_DIR)
        except (kindcluster.KindError, kindnetwork.NetworkError) as error:
            raise click.ClickException(str(error)) from error
        click.echo(f"kind cluster ready; use it with: export KUBECONFIG={kind_cluster.kubeconfig}")
        return
    from ghostpay_devtools import localcluster

    try:
        running = localcluster.up(directory or localcluster.DEFAULT_DIR)
    except localcluster.ClusterError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"cluster ready; use it with: export KUBECONFIG={running.kubeconfig}")


@cluster.command("down")
@_cluster_dir
@_kind_flag
def cluster_down(directory: Path | None, use_kind: bool) -> None:
    """Delete the cluster in DIR; no process (with --kind: no node container) of it is left running."""
    if use_kind:
        from ghostpay_devtools import kindcluster

        try:
            kindcluster.down(directory or kindcluster.DEFAULT_DIR)
        except kindcluster.KindError as error:
            raise click.ClickException(str(error)) from error
        click.echo(f"kind cluster {kindcluster.CLUSTER_NAME} deleted")
        return
    from ghostpay_devtools import localcluster

    directory = directory or localcluster.DEFAULT_DIR
    localcluster.down(directory)
    click.echo(f"cluster in {directory} deleted")
