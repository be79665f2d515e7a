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
