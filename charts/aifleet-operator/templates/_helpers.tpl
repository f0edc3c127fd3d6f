{{/*
The chart's name, or nameOverride.
*/}}
{{- define "aifleet-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
A fully qualified name for the release's objects: fullnameOverride, or release name + chart name
(just the release name when it already contains the chart name, just the chart name when it starts with
"<release>-": `helm install aifleet` gives aifleet-operator). 63 characters at most (DNS labels).
*/}}
{{- define "aifleet-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else if hasPrefix (printf "%s-" .Release.Name) $name }}
{{- $name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
chart label: name-version.
*/}}
{{- define "aifleet-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Standard labels (https://helm.sh/docs/chart_best_practices/labels/).
*/}}
{{- define "aifleet-operator.labels" -}}
helm.sh/chart: {{ include "aifleet-operator.chart" . }}
{{ include "aifleet-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: aifleet
{{- end }}

{{/*
Selector labels: immutable in a Deployment, so never add to them.
*/}}
{{- define "aifleet-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "aifleet-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/*
The ServiceAccount the operator runs as.
*/}}
{{- define "aifleet-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "aifleet-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The image reference; the tag defaults to the chart's appVersion.
*/}}
{{- define "aifleet-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
High availability: more than one replica runs kopf peering.
*/}}
{{- define "aifleet-operator.peering" -}}
{{- if gt (int .Values.replicaCount) 1 }}true{{ end }}
{{- end }}

{{- define "aifleet-operator.peeringName" -}}
{{- default (include "aifleet-operator.fullname" .) .Values.peering.name }}
{{- end }}

{{/*
The rules the operator needs in every namespace it watches. They mirror
operator/aifleet/observability/permissions.py (the operator's preflight checks the same list), and
tests/test_observability.py and e2e/test_chart.py assert the two are equal. Least privilege: no wildcards,
no get where list+watch suffice (kopf and the reconciler read from watch caches), no delete but the one
StatefulSet replacement (owner references and the garbage collector remove children), no pods.
*/}}
{{- define "aifleet-operator.namespacedRules" -}}
# AIServices: kopf watches them and adds/removes its finalizer and bookkeeping annotations.
- apiGroups: ["aifleet.dev"]
  resources: ["aiservices"]
  verbs: ["list", "watch", "patch"]
# Status and conditions.
- apiGroups: ["aifleet.dev"]
  resources: ["aiservices/status"]
  verbs: ["patch"]
# The children it owns: watched, and server-side-applied (an apply that creates is authorized as create too).
- apiGroups: [""]
  resources: ["serviceaccounts"]
  verbs: ["list", "watch", "create", "patch"]
# delete removes a canary's per-version Services once the canary ends.
- apiGroups: [""]
  resources: ["services"]
  verbs: ["list", "watch", "create", "patch", "delete"]
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: ["list", "watch", "create", "patch"]
# delete removes a canary's Triton Deployment once it is rolled back, promoted or ended.
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["list", "watch", "create", "patch", "delete"]
# delete (with propagation Orphan) replaces a StatefulSet whose volumeClaimTemplates changed, keeping its pods
# and volumes for the new one to adopt.
- apiGroups: ["apps"]
  resources: ["statefulsets"]
  verbs: ["list", "watch", "create", "patch", "delete"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["list", "watch", "create", "patch"]
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["list", "watch", "create", "patch"]
# Where the Gateway API is installed: a canary's weighted HTTPRoute, deleted once the canary ends.
- apiGroups: ["gateway.networking.k8s.io"]
  resources: ["httproutes"]
  verbs: ["list", "watch", "create", "patch", "delete"]
# Why Triton pods that do not become available fail (crash, image, scheduling): listed by label selector.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list"]
# The operator autoscaling engine resizes Triton.
- apiGroups: ["apps"]
  resources: ["deployments/scale"]
  verbs: ["patch"]
# Events that explain each decision in `kubectl describe aiservice`.
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end }}

{{/*
Secrets (rbac.secretAccess; docs/install.md, "Secrets"). byName: the generated Secrets are created and applied
and every Secret the operator needs is read by name; no list, no watch, so its token cannot enumerate Secrets.
watch: list and watch as well, so a hand edit of a Secret aifleet manages is put back at once; the token can then
list every Secret in its scope.
*/}}
{{- define "aifleet-operator.secretRules" -}}
{{- if eq .Values.rbac.secretAccess "watch" -}}
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch", "create", "patch"]
{{- else -}}
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "create", "patch"]
{{- end }}
{{- end }}
