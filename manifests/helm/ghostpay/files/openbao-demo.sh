#!/bin/sh
# The demo OpenBao's container (demo.vault.enabled): a dev server, in memory, serving TLS, set up for the instance
# as docs/operator.md's "Vault-side setup" says: transit keys ghostpay-jwt and ghostpay-pan, one policy per workload
# (the repository's policies/*.hcl, mounted at /policies), Kubernetes auth checking tokens with this pod's own
# ServiceAccount (bound to system:auth-delegator) and one role per workload bound to that workload's
# ServiceAccount. Ready once set up. If the server stops, so does this script and the kubelet restarts the
# container, which sets it up again with new keys: a demo (tokens and card data from before are then unreadable).
set -eu
: "${BAO_DEV_ROOT_TOKEN_ID:?}" "${INSTANCE:?}" "${POD_NAMESPACE:?}" "${ROLE:=ghostpay}"
export BAO_ADDR=http://127.0.0.1:8200 BAO_TOKEN="$BAO_DEV_ROOT_TOKEN_ID"
rm -f /tmp/configured
# Two listeners: the dev one, plain HTTP on the pod's loopback (this script and `kubectl exec`), and TLS on 8300
# with the certificate mounted at $TLS_DIR (what the Service exposes).
TLS_DIR="${TLS_DIR:-/tls}"
cat >/tmp/listener.hcl <<EOF
listener "tcp" {
  address       = "0.0.0.0:8300"
  tls_cert_file = "$TLS_DIR/tls.crt"
  tls_key_file  = "$TLS_DIR/tls.key"
}
EOF
bao server -dev -dev-listen-address=127.0.0.1:8200 -dev-root-token-id="$BAO_DEV_ROOT_TOKEN_ID" \
  -config=/tmp/listener.hcl &
server=$!
tries=0
until bao status >/dev/null 2>&1; do
  kill -0 "$server"
  tries=$((tries + 1))
  [ "$tries" -le 120 ] || { echo "openbao-demo: the server did not start" >&2; exit 1; }
  sleep 0.5
done
bao secrets enable transit >/dev/null
bao write -f transit/keys/ghostpay-jwt type=rsa-2048 >/dev/null
bao write -f transit/keys/ghostpay-pan type=aes256-gcm96 >/dev/null
bao auth enable kubernetes >/dev/null
bao write auth/kubernetes/config kubernetes_host="https://${KUBERNETES_SERVICE_HOST}:${KUBERNETES_SERVICE_PORT}" >/dev/null
for workload in auth cards charges analytics key-rotation; do
  bao policy write "$ROLE-$workload" "/policies/$workload.hcl" >/dev/null
  bao write "auth/kubernetes/role/$ROLE-$workload" bound_service_account_names="$INSTANCE-$workload" \
    bound_service_account_namespaces="$POD_NAMESPACE" token_policies="$ROLE-$workload" token_ttl=1h >/dev/null
done
touch /tmp/configured
echo "openbao-demo: set up for $INSTANCE in $POD_NAMESPACE" >&2
wait "$server"
