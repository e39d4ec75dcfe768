{{/* Chart name, overridable. */}}
{{- define "cloudsigma-csi.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Prefix for every namespaced and cluster-wide object name. */}}
{{- define "cloudsigma-csi.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "cloudsigma-csi.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "cloudsigma-csi.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels; call with (dict "ctx" $ "component" "controller"). */}}
{{- define "cloudsigma-csi.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cloudsigma-csi.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* repository:tag[@digest] of an entry of .Values.images; the driver images' tag defaults to v<appVersion>. */}}
{{- define "cloudsigma-csi.image" -}}
{{- $img := index .ctx.Values.images .name -}}
{{- $tag := $img.tag | default (printf "v%s" .ctx.Chart.AppVersion) -}}
{{- printf "%s:%s" $img.repository $tag -}}
{{- with $img.digest }}@{{ . }}{{ end -}}
{{- end -}}

{{/* The Secret holding username/password/token: created by the chart or supplied. */}}
{{- define "cloudsigma-csi.credentialsSecret" -}}
{{- if or .Values.credentials.username .Values.credentials.token -}}
{{- printf "%s-credentials" (include "cloudsigma-csi.fullname" .) -}}
{{- else -}}
{{- .Values.credentials.existingSecret | default "cloudsigma-credentials" -}}
{{- end -}}
{{- end -}}

{{/* Where the API is: flags shared by both plugins. */}}
{{- define "cloudsigma-csi.apiArgs" -}}
{{- if .Values.apiUrl }}
- --api-url={{ .Values.apiUrl }}
{{- else }}
- --location={{ required "set location (e.g. zrh) or apiUrl" .Values.location }}
{{- end }}
{{- if .Values.allowInsecureHttp }}
- --allow-insecure-http
{{- end }}
{{- end -}}

{{/*
The topology value the controller derives (cmd/cloudsigma-csi-driver
topologyLocation): location, unless apiUrl is set; then the first label of a
*.cloudsigma.com host, else "local". The node plugin gets only this: it does
not use the API, so it gets no URL and no credentials.
*/}}
{{- define "cloudsigma-csi.topologyLocation" -}}
{{- if not .Values.apiUrl -}}
{{- required "set location (e.g. zrh) or apiUrl" .Values.location -}}
{{- else -}}
{{- $host := (urlParse .Values.apiUrl).host | splitList ":" | first -}}
{{- if hasSuffix ".cloudsigma.com" $host -}}
{{- $host | splitList "." | first -}}
{{- else -}}
local
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Fails rendering on contradictory settings. */}}
{{- define "cloudsigma-csi.validate" -}}
{{- if and .Values.apiUrl (urlParse .Values.apiUrl).userinfo -}}
{{- fail "apiUrl must not carry credentials (user:password@): a URL shows in pod specs and helm output; put them in credentials.existingSecret" -}}
{{- end -}}
{{- with .Values.credentials -}}
{{- if and (or .username .token) .existingSecret -}}
{{- fail "credentials: set either existingSecret or inline username/password (or token), not both" -}}
{{- end -}}
{{- if and .username (not .password) -}}
{{- fail "credentials.password is required with credentials.username" -}}
{{- end -}}
{{- end -}}
{{- if and .Values.proxy.httpsProxy (urlParse .Values.proxy.httpsProxy).userinfo -}}
{{- fail "proxy.httpsProxy must not carry credentials (user:password@): it would show in the controller's pod spec" -}}
{{- end -}}
{{- with .Values.metrics.bindAddress -}}
{{- if and $.Values.metrics.enabled (or (hasPrefix "127." .) (eq . "::1") (eq . "localhost")) -}}
{{- fail (printf "metrics.bindAddress %s is a loopback address: the controller's readiness probe (/readyz) and Prometheus reach the pod IP" .) -}}
{{- end -}}
{{- end -}}
{{- if and .Values.apiUrl (hasPrefix "http://" .Values.apiUrl) (not .Values.allowInsecureHttp) -}}
{{- fail "apiUrl uses http://: set allowInsecureHttp=true (only for a local simulator)" -}}
{{- end -}}
{{- end -}}

{{/* (Cluster)RoleBinding of the controller ServiceAccount; call with (dict "ctx" $ "kind" "ClusterRole"|"Role" "role" "provisioner"). */}}
{{- define "cloudsigma-csi.controllerBinding" -}}
{{- $fullname := include "cloudsigma-csi.fullname" .ctx -}}
kind: {{ .kind }}Binding
apiVersion: rbac.authorization.k8s.io/v1
metadata:
  name: {{ $fullname }}-{{ .role }}
  {{- if eq .kind "Role" }}
  namespace: {{ .ctx.Release.Namespace }}
  {{- end }}
  labels:
    {{- include "cloudsigma-csi.labels" .ctx | nindent 4 }}
subjects:
  - kind: ServiceAccount
    name: {{ $fullname }}-controller
    namespace: {{ .ctx.Release.Namespace }}
roleRef:
  kind: {{ .kind }}
  name: {{ $fullname }}-{{ .role }}
  apiGroup: rbac.authorization.k8s.io
{{- end -}}

{{/* The driver's --metrics-address: metrics.bindAddress (an IPv6 one bracketed), then the port. */}}
{{- define "cloudsigma-csi.metricsAddress" -}}
{{- $host := .Values.metrics.bindAddress | default "" -}}
{{- if contains ":" $host -}}
{{- $host = printf "[%s]" $host -}}
{{- end -}}
{{- printf "%s:%v" $host .Values.metrics.port -}}
{{- end -}}

{{/* HTTPS_PROXY/NO_PROXY for the controller's driver container (proxy.*); empty without a proxy. */}}
{{- define "cloudsigma-csi.proxyEnv" -}}
{{- with .Values.proxy.httpsProxy }}
- name: HTTPS_PROXY
  value: {{ . | quote }}
{{- end }}
{{- with .Values.proxy.noProxy }}
- name: NO_PROXY
  value: {{ . | quote }}
{{- end }}
{{- end -}}

{{/* The TCP port of a URL: its explicit port, else 80 for http, 443 otherwise. */}}
{{- define "cloudsigma-csi.urlPort" -}}
{{- $u := urlParse . -}}
{{- $port := regexFind ":[0-9]+$" $u.host | trimPrefix ":" -}}
{{- if $port -}}
{{- $port -}}
{{- else if eq $u.scheme "http" -}}
80
{{- else -}}
443
{{- end -}}
{{- end -}}
