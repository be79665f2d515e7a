{{/* The chart name, or nameOverride; cut to 63 characters (a DNS label). */}}
{{- define "s3-elector.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The full name: fullnameOverride, or <release>-<name>; cut to 63 characters. */}}
{{- define "s3-elector.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "s3-elector.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels on every object (Kubernetes recommended labels). */}}
{{- define "s3-elector.labels" -}}
app.kubernetes.io/name: {{ include "s3-elector.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels: stable for the workload's lifetime (no version). */}}
{{- define "s3-elector.selectorLabels" -}}
app.kubernetes.io/name: {{ include "s3-elector.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The ServiceAccount: the one created here, or a given one, or "default". */}}
{{- define "s3-elector.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "s3-elector.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The sidecar's image: repository:tag, the tag defaulting to appVersion. */}}
{{- define "s3-elector.image" -}}
{{- printf "%s:%s" .Values.sidecar.image.repository (default .Chart.AppVersion .Values.sidecar.image.tag) -}}
{{- end -}}

{{/* Whether the sidecar runs as a native sidecar (an init container with
restartPolicy: Always): asked for, and the cluster is 1.29 or newer. */}}
{{- define "s3-elector.native" -}}
{{- if and .Values.sidecar.native (semverCompare ">=1.29-0" .Capabilities.KubeVersion.Version) -}}
true
{{- end -}}
{{- end -}}

{{/* The sidecar's stop budget in whole seconds, as `s3-elector check`
prints it for the rendered config: 2 x the request timeout (a request in
flight, then the release), the onLost hook's timeout + 2 s kill grace + 1 s
output drain when there is one, the request timeout again to remove the
leader's pod label with leaderRouting, 2.5 s for the candidate registry (wake the
successors, remove the entry), 1 s for the rest. */}}
{{- define "s3-elector.stopBudgetSeconds" -}}
{{- $b := mulf 2 .Values.election.requestTimeoutSeconds -}}
{{- with .Values.hooks.onLost -}}
{{- $b = addf $b (default 30 .timeoutSeconds) 3 -}}
{{- end -}}
{{- if .Values.leaderRouting.enabled -}}
{{- $b = addf $b .Values.election.requestTimeoutSeconds -}}
{{- end -}}
{{- $b = addf $b 2.5 1 -}}
{{- ceil $b -}}
{{- end -}}

{{/* terminationGracePeriodSeconds: the app's stop time, then the sidecar's
stop budget and 1 s (a native sidecar stops after the app); a value set by
hand must leave the sidecar its budget. */}}
{{- define "s3-elector.terminationGracePeriodSeconds" -}}
{{- $budget := include "s3-elector.stopBudgetSeconds" . | atoi -}}
{{- $auto := add .Values.workload.appStopSeconds $budget 1 -}}
{{- with .Values.workload.terminationGracePeriodSeconds -}}
{{- if lt (int .) (add $budget 1) -}}
{{- fail (printf "workload.terminationGracePeriodSeconds: %v is less than the sidecar's stop budget of %d s + 1 s (2 x election.requestTimeoutSeconds, hooks.onLost.timeoutSeconds + 3, 3.5): raise it, or leave it unset to get %d (workload.appStopSeconds + budget + 1)" . $budget $auto) -}}
{{- end -}}
{{- . -}}
{{- else -}}
{{- $auto -}}
{{- end -}}
{{- end -}}

{{/* The pods of this election, as a label selector `k=v,k=v`:
leaderRouting.podSelector, else the chart's selector labels. */}}
{{- define "s3-elector.podSelector" -}}
{{- $labels := .Values.leaderRouting.podSelector | default (include "s3-elector.selectorLabels" . | fromYaml) -}}
{{- $terms := list -}}
{{- range $k, $v := $labels -}}
{{- $terms = append $terms (printf "%s=%s" $k $v) -}}
{{- end -}}
{{- join "," $terms -}}
{{- end -}}

{{/* One hook of the config, from (list "on_lost" {command, timeoutSeconds}). */}}
{{- define "s3-elector.hook" -}}
{{- $hook := index . 1 -}}
{{ index . 0 }}:
  command: {{ toJson $hook.command }}
  timeout: {{ printf "%vs" (default 30 $hook.timeoutSeconds) | quote }}
{{- end -}}

{{/* The s3-elector config (the ConfigMap's s3-elector.yaml). Every string
is written as a JSON string, so `name: "123"` stays a string. */}}
{{- define "s3-elector.config" -}}
# Identity comes from the pod name (S3_ELECTOR_IDENTITY, downward API).
election: {{ .Values.election.name | toJson }}
s3:
  bucket: {{ .Values.election.bucket | toJson }}
  {{- with .Values.election.prefix }}
  prefix: {{ . | toJson }}
  {{- end }}
  region: {{ .Values.election.region | toJson }}
  {{- with .Values.election.endpointUrl }}
  endpoint_url: {{ . | toJson }}
  {{- end }}
  force_path_style: {{ .Values.election.forcePathStyle }}
  request_timeout: {{ printf "%vs" .Values.election.requestTimeoutSeconds | quote }}
timing:
  lease_duration: {{ .Values.election.leaseDuration | toJson }}
  renew_deadline: {{ .Values.election.renewDeadline | toJson }}
  retry_period: {{ .Values.election.retryPeriod | toJson }}
http:
  listen: {{ printf "0.0.0.0:%v" .Values.sidecar.port | quote }}
  allow_non_loopback: true
status_file: /run/s3-elector/status.json
{{- if .Values.leaderRouting.enabled }}
{{- if not .Values.standalone }}
{{- if not .Values.leaderRouting.podSelector }}
{{- fail "leaderRouting with standalone: false needs leaderRouting.podSelector: the labels of your own pods (the chart's own labels are not on them)" }}
{{- end }}
{{- if .Values.serviceAccount.create }}
{{- fail "leaderRouting with standalone: false needs serviceAccount.create: false and serviceAccount.name: your pods' ServiceAccount (this chart then creates none, and the Role must be bound to yours)" }}
{{- end }}
{{- end }}
{{- if .Values.leaderOnlyReadiness }}
{{- fail "leaderRouting and leaderOnlyReadiness exclude each other: with leaderRouting every pod stays Ready and the Service selects the leader's label; turn leaderOnlyReadiness off" }}
{{- end }}
# The leader labels its own pod (POD_NAME, POD_NAMESPACE: downward API).
kubernetes:
  leader_label: {{ .Values.leaderRouting.label | toJson }}
  pod_selector: {{ include "s3-elector.podSelector" . | toJson }}
  request_timeout: {{ printf "%vs" .Values.election.requestTimeoutSeconds | quote }}
{{- end }}
{{- if or .Values.hooks.onAcquired .Values.hooks.onLost .Values.hooks.onLeaderChanged }}
hooks:
  {{- with .Values.hooks.onAcquired }}
  {{- include "s3-elector.hook" (list "on_acquired" .) | nindent 2 }}
  {{- end }}
  {{- with .Values.hooks.onLost }}
  {{- include "s3-elector.hook" (list "on_lost" .) | nindent 2 }}
  {{- end }}
  {{- with .Values.hooks.onLeaderChanged }}
  {{- include "s3-elector.hook" (list "on_leader_changed" .) | nindent 2 }}
  {{- end }}
{{- end }}
{{- end -}}

{{/* The sidecar container (without the native sidecar's restartPolicy). */}}
{{- define "s3-elector.sidecar" -}}
name: s3-elector
image: {{ include "s3-elector.image" . | quote }}
imagePullPolicy: {{ .Values.sidecar.image.pullPolicy }}
args: ["run", "--config", "/etc/s3-elector/s3-elector.yaml"]
env:
  - name: S3_ELECTOR_IDENTITY
    valueFrom:
      fieldRef:
        fieldPath: metadata.name
  - name: POD_NAME
    valueFrom:
      fieldRef:
        fieldPath: metadata.name
  - name: POD_NAMESPACE
    valueFrom:
      fieldRef:
        fieldPath: metadata.namespace
  - name: S3_ELECTOR_LOG_FORMAT
    value: {{ .Values.sidecar.logFormat | quote }}
  - name: AWS_REGION
    value: {{ .Values.election.region | quote }}
  # Where other pods' copies wake this one after a hand-over.
  - name: POD_IP
    valueFrom:
      fieldRef:
        fieldPath: status.podIP
  - name: S3_ELECTOR_ADVERTISE_ADDRESS
    value: {{ printf "$(POD_IP):%v" .Values.sidecar.port | quote }}
  {{- with .Values.sidecar.env }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
ports:
  - name: elector-http
    containerPort: {{ .Values.sidecar.port }}
    protocol: TCP
# Until the store has been probed and HTTP serves (up to 2 minutes).
startupProbe:
  httpGet:
    path: /healthz
    port: elector-http
  periodSeconds: 2
  failureThreshold: 60
livenessProbe:
  httpGet:
    path: /healthz
    port: elector-http
  periodSeconds: 10
  failureThreshold: 3
readinessProbe:
  httpGet:
    {{- if .Values.leaderOnlyReadiness }}
    path: /leader/health
    {{- else }}
    path: /readyz
    {{- end }}
    port: elector-http
  periodSeconds: 2
  failureThreshold: 1
resources:
  {{- toYaml .Values.sidecar.resources | nindent 2 }}
securityContext:
  {{- toYaml .Values.sidecar.securityContext | nindent 2 }}
volumeMounts:
  - name: config
    mountPath: /etc/s3-elector
    readOnly: true
  - name: s3-elector-status
    mountPath: /run/s3-elector
{{- end -}}

{{/* The sidecar's two volumes: its config and the status file's tmpfs. */}}
{{- define "s3-elector.volumes" -}}
- name: config
  configMap:
    name: {{ include "s3-elector.fullname" . }}
- name: s3-elector-status
  emptyDir:
    medium: Memory
    sizeLimit: 1Mi
{{- end -}}
