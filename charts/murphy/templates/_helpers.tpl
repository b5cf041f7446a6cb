{{/*
Chart name, or nameOverride. Truncated to 63 characters (the limit of a label value).
*/}}
{{- define "murphy.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Release-qualified name: fullnameOverride, else "<release>-<chart>", else the release name
alone when it already contains the chart name (`helm install murphy ...` gives "murphy").
*/}}
{{- define "murphy.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Per-component names. Each is used for the objects of that component, and
"murphy.agentName" is also the agent certificate's CN and DNS name and the controller's
--agent-server-name, so these must stay one definition.
*/}}
{{- define "murphy.controllerName" -}}
{{- printf "%s-controller" (include "murphy.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "murphy.agentName" -}}
{{- printf "%s-agent" (include "murphy.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Chart label value: "<chart>-<version>" ("+" is not allowed in a label value).
*/}}
{{- define "murphy.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels of one component. Call with (dict "ctx" $ "component" "controller").
The controller finds agent pods by app.kubernetes.io/component=agent and
app.kubernetes.io/instance=<release> (its --agent-selector), so both must be here.
*/}}
{{- define "murphy.selectorLabels" -}}
app.kubernetes.io/name: {{ include "murphy.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
All labels of one component's objects. Call with (dict "ctx" $ "component" "agent").
*/}}
{{- define "murphy.labels" -}}
helm.sh/chart: {{ include "murphy.chart" .ctx }}
{{ include "murphy.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Values.image.tag | default .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
{{- end }}

{{/*
Container image: repository:tag, the tag defaulting to the chart's appVersion.
*/}}
{{- define "murphy.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion | toString) }}
{{- end }}

{{/*
Names of the TLS Secrets. With tls.existingSecrets set, those; otherwise the ones
templates/certs.yaml makes (Sprig-generated or cert-manager-issued, same names).
*/}}
{{- define "murphy.caSecretName" -}}
{{- printf "%s-ca" (include "murphy.fullname" .) }}
{{- end }}

{{- define "murphy.controllerTLSSecretName" -}}
{{- .Values.tls.existingSecrets.controller | default (printf "%s-tls" (include "murphy.controllerName" .)) }}
{{- end }}

{{- define "murphy.agentTLSSecretName" -}}
{{- .Values.tls.existingSecrets.agent | default (printf "%s-tls" (include "murphy.agentName" .)) }}
{{- end }}
