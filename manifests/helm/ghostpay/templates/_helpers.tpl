{{/*
Names and labels. The operator's objects keep the fixed name ghostpay-operator of manifests/ (the operator's kopf
peering is named so, and tests/helm compares the two installs object by object): one operator per cluster, like
the CRDs the chart installs.
*/}}
{{- define "ghostpay.operatorName" -}}ghostpay-operator{{- end }}

{{- define "ghostpay.labels" -}}
app.kubernetes.io/name: ghostpay-operator
app.kubernetes.io/part-of: ghostpay
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{/* The operator's image: the tag defaults to the chart's appVersion (the package version). */}}
{{- define "ghostpay.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/*
The operator's rules, the same in the ClusterRole and in the namespaced Role (manifests/rbac.yaml,
manifests/namespaced/watched/rbac.yaml). Least privilege: it reads what it watches and writes only what it owns; it
never lists or watches Secrets (it reads the database Secret and its own key Secrets by name) and deletes nothing but
the key-rotation CronJob (owner references let the garbage collector do the rest). Argument: true for the
cluster-wide ClusterRole, which also reads the CRDs and uses the ClusterKopfPeering.
*/}}
{{- define "ghostpay.rules" -}}
- apiGroups: [ghostpay.io]
  resources: [ghostpayinstances]
  verbs: [get, list, watch, patch]
- apiGroups: [ghostpay.io]
  resources: [ghostpayinstances/status]
  verbs: [get, patch]
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, patch]
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, watch, create, patch]
- apiGroups: [batch]
  resources: [cronjobs]
  verbs: [get, list, watch, create, patch, delete]
# The key-rotation Job's Role and its binding; creating a Role needs the verbs it grants (get/patch on secrets).
# `watch`, like every kind it owns: a reconcile pass reads its children from the watches' caches, not by listing.
- apiGroups: [rbac.authorization.k8s.io]
  resources: [roles, rolebindings]
  verbs: [get, list, watch, create, patch]
- apiGroups: [""]
  resources: [services, configmaps, serviceaccounts]
  verbs: [get, list, watch, create, patch]
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, create, patch]
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [get, list, watch, create, patch]
# The Prometheus Operator's kinds, when the cluster has them: a ServiceMonitor and a PrometheusRule per instance
# (listed by the instance's labels each full pass, a 404 meaning no Prometheus Operator; never watched).
- apiGroups: [monitoring.coreos.com]
  resources: [servicemonitors, prometheusrules]
  verbs: [list, create, patch]
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [create, patch]
{{- if . }}
- apiGroups: [kopf.dev]
  resources: [clusterkopfpeerings, kopfpeerings]
  verbs: [get, list, watch, patch]
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [get, list, watch]
{{- else }}
- apiGroups: [kopf.dev]
  resources: [kopfpeerings]
  verbs: [get, list, watch, patch]
{{- end }}
{{- end }}

{{/* Demo objects' labels: the instance's name as their part-of, the component given. */}}
{{- define "ghostpay.demoLabels" -}}
app.kubernetes.io/part-of: ghostpay
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{/*
A hardened demo database pod's shared parts (PostgreSQL, Redis): non-root (the images' uid 999), no privilege
escalation, no capabilities, read-only root; writable paths are emptyDirs.
*/}}
{{- define "ghostpay.demoPodSecurity" -}}
runAsNonRoot: true
runAsUser: 999
runAsGroup: 999
fsGroup: 999
seccompProfile: {type: RuntimeDefault}
{{- end }}
{{- define "ghostpay.demoContainerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities: {drop: [ALL]}
{{- end }}

{{/*
A random secret made once: the value under `key` of the Secret `name` in the release's namespace if it exists
(so `helm upgrade` keeps it), else `prefix` and `length` random letters and digits. Returns it base64-encoded,
for `data:`. Arguments: (list $ name key length prefix).
*/}}
{{- define "ghostpay.keptRandom" -}}
{{- $root := index . 0 }}{{ $name := index . 1 }}{{ $key := index . 2 }}
{{- $existing := lookup "v1" "Secret" $root.Release.Namespace $name }}
{{- if and $existing (hasKey ($existing.data | default dict) $key) }}
{{- index $existing.data $key }}
{{- else }}
{{- printf "%s%s" (index . 4) (randAlphaNum (index . 3)) | b64enc }}
{{- end }}
{{- end }}
