{{- define "jobmatch.labels" -}}
app.kubernetes.io/name: jobmatch
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* `name/key` of a Secret key value ({name, key}), or nothing when no name is set. */}}
{{- define "jobmatch.secretKey" -}}
{{- if .name -}}{{ .name }}/{{ .key }}{{- end -}}
{{- end -}}

{{/* The claim the matcher keeps the embedded store on; empty with Qdrant or without persistence. */}}
{{- define "jobmatch.matcherClaim" -}}
{{- if and (not .Values.qdrant.url) .Values.matcher.persistence.enabled -}}
{{- .Values.matcher.persistence.existingClaim | default "jobmatch-matcher-data" -}}
{{- end -}}
{{- end -}}

{{/* The operator's NATS Secret volumes, mounts and environment: the same files the workers get. */}}
{{- define "jobmatch.natsSecretVolumes" -}}
{{- with .Values.nats.credentialsSecret }}{{ if .name }}
- name: nats-credentials
  secret:
    secretName: {{ .name }}
    items: [{key: {{ .key | quote }}, path: {{ .key | quote }}}]
{{- end }}{{ end }}
{{- with .Values.nats.tls.caSecret }}{{ if .name }}
- name: nats-ca
  secret:
    secretName: {{ .name }}
    items: [{key: {{ .key | quote }}, path: {{ .key | quote }}}]
{{- end }}{{ end }}
{{- end -}}

{{- define "jobmatch.natsSecretMounts" -}}
{{- if .Values.nats.credentialsSecret.name }}
- {name: nats-credentials, mountPath: /etc/jobmatch/nats-credentials, readOnly: true}
{{- end }}
{{- if .Values.nats.tls.caSecret.name }}
- {name: nats-ca, mountPath: /etc/jobmatch/nats-ca, readOnly: true}
{{- end }}
{{- end -}}

{{- define "jobmatch.natsSecretEnv" -}}
{{- with .Values.nats.credentialsSecret }}{{ if .name }}
- {name: JOBMATCH_NATS_CREDS, value: {{ printf "/etc/jobmatch/nats-credentials/%s" .key | quote }}}
{{- end }}{{ end }}
{{- with .Values.nats.tls.caSecret }}{{ if .name }}
- {name: JOBMATCH_NATS_CA, value: {{ printf "/etc/jobmatch/nats-ca/%s" .key | quote }}}
{{- end }}{{ end }}
{{- end -}}

{{/* The environment that names the operator's namespace and Deployment, and the extra env. */}}
{{- define "jobmatch.operatorIdentityEnv" -}}
- {name: JOBMATCH_NAMESPACE, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}
- {name: JOBMATCH_OWNER_DEPLOYMENT, value: jobmatch-operator}
{{- with .Values.operator.env }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "jobmatch.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
seccompProfile: {type: RuntimeDefault}
{{- end -}}

{{- define "jobmatch.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities: {drop: [ALL]}
{{- end -}}

{{/* The stream and bucket limits (JOBMATCH_BUS_*), for the operator to apply and pass on. */}}
{{- define "jobmatch.busLimitsEnv" -}}
{{- $limits := .Values.nats.limits -}}
{{- range $name, $var := dict "jobs" "JOBS" "vectors" "VECTORS" "matches" "MATCHES" "deadLetters" "DEAD_LETTERS" "notices" "NOTICES" "postings" "POSTINGS" }}
{{- $bound := index $limits $name | default dict }}
{{- with $bound.maxAge }}
- {name: JOBMATCH_BUS_{{ $var }}_MAX_AGE, value: {{ . | quote }}}
{{- end }}
{{- with $bound.maxBytes }}
- {name: JOBMATCH_BUS_{{ $var }}_MAX_BYTES, value: {{ . | quote }}}
{{- end }}
{{- end }}
- {name: JOBMATCH_BUS_REPLICAS, value: {{ $limits.replicas | default 1 | quote }}}
{{- end }}
