{{/* The targets in the order they are listed, and whom each calls. */}}
{{- define "caseway.targetNames" -}}
tenancy catalog clients records authorizations eligibility ticketing hmis
{{- end -}}

{{- define "caseway.peersOf" -}}
{{- $peers := dict "tenancy" "" "catalog" "tenancy" "clients" "catalog" "records" "catalog clients authorizations eligibility" "authorizations" "catalog clients records eligibility" "eligibility" "" "ticketing" "" "hmis" "" -}}
{{- index $peers . -}}
{{- end -}}

{{- define "caseway.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "caseway.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Labels that select one workload's pods: call with (dict "root" $ "workload" "records"). */}}
{{- define "caseway.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .workload }}
{{- end -}}

{{- define "caseway.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
The workloads to run: in split mode each enabled target with the defaults under its own
settings; in all mode one, named "all". Returned as JSON: {"name": {settings}}.
*/}}
{{- define "caseway.workloads" -}}
{{- $out := dict -}}
{{- if eq .Values.mode "all" -}}
{{- $_ := set $out "all" (mergeOverwrite (deepCopy .Values.defaults) (deepCopy .Values.all)) -}}
{{- else -}}
{{- range $name := splitList " " (include "caseway.targetNames" .) -}}
{{- $own := index $.Values.targets $name | default dict -}}
{{- if ne (toString (index $own "enabled")) "false" -}}
{{- $_ := set $out $name (mergeOverwrite (deepCopy $.Values.defaults) (deepCopy (omit $own "enabled"))) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/* Where a workload reaches a peer: call with (dict "root" $ "peer" "catalog"). */}}
{{- define "caseway.endpoint" -}}
{{- $root := .root -}}
{{- $configured := index $root.Values.endpoints .peer -}}
{{- if $configured -}}
{{- $configured -}}
{{- else -}}
{{- $own := index $root.Values.targets .peer | default dict -}}
{{- if eq (toString (index $own "enabled")) "false" -}}
{{- fail (printf "targets.%s is disabled: set endpoints.%s to where its callers reach it" .peer .peer) -}}
{{- end -}}
{{- printf "http://%s-%s-peers.%s.svc:%v" (include "caseway.fullname" $root) .peer $root.Release.Namespace $root.Values.ports.grpc -}}
{{- end -}}
{{- end -}}

{{/* The pod's security context and the container's, the same for every pod. */}}
{{- define "caseway.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "caseway.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The terminationGracePeriodSeconds above the whole drain. */}}
{{- define "caseway.terminationGrace" -}}
{{- add .Values.shutdown.preStopSeconds (div .Values.shutdown.delayMillis 1000) .Values.shutdown.graceSeconds 10 -}}
{{- end -}}

{{/* Checks of checkov that do not fit, each with its reason, on the workloads. */}}
{{- define "caseway.checkovSkips" -}}
checkov.io/skip1: CKV_K8S_35=The database, Redis and RabbitMQ URLs are read from the environment (secretKeyRef); keys and secrets are mounted files
{{- if not .Values.image.digest }}
checkov.io/skip2: CKV_K8S_43=No image.digest is given; set one to pin the image
{{- end }}
{{- end -}}

{{/*
The offboarding Job the Tenant operator makes for a Tenant deleted with spec.offboarding:
`caseway tenant offboard` (the operator adds the tenant, the destination and the key file) as
the schema owner, as the migration Job runs, with the PII keys and the stores the clients and
ticketing pods use.
*/}}
{{- define "caseway.offboardingJob" -}}
apiVersion: batch/v1
kind: Job
metadata:
  labels:
    {{- include "caseway.labels" . | nindent 4 }}
    app.kubernetes.io/component: offboarding
spec:
  backoffLimit: {{ .Values.operator.offboarding.backoffLimit }}
  template:
    metadata:
      labels:
        {{- include "caseway.selector" (dict "root" . "workload" "offboarding") | nindent 8 }}
        caseway.io/pod: "true"
    spec:
      restartPolicy: Never
      automountServiceAccountToken: false
      enableServiceLinks: false
      securityContext:
        {{- include "caseway.podSecurityContext" . | nindent 8 }}
      {{- with .Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      containers:
        - name: offboard
          image: {{ include "caseway.image" . }}
          imagePullPolicy: {{ .Values.image.pullPolicy }}
          args: ["tenant", "offboard"]
          envFrom:
            - configMapRef:
                name: {{ include "caseway.fullname" . }}
          env:
            - name: CASEWAY_MIGRATION_DATABASE_URL
              valueFrom:
                secretKeyRef:
                  name: {{ .Values.secrets.migrationDatabase.name }}
                  key: {{ .Values.secrets.migrationDatabase.key }}
            - name: CASEWAY_DATABASE_URL
              valueFrom:
                secretKeyRef:
                  name: {{ .Values.secrets.database.name }}
                  key: {{ .Values.secrets.database.key }}
            - name: CASEWAY_AMQP_URL
              valueFrom:
                secretKeyRef:
                  name: {{ .Values.secrets.amqp.name }}
                  key: {{ .Values.secrets.amqp.key }}
          resources:
            {{- toYaml .Values.migrations.resources | nindent 12 }}
          securityContext:
            {{- include "caseway.containerSecurityContext" . | nindent 12 }}
          volumeMounts:
            - name: pii-keys
              mountPath: /etc/caseway/pii-keys
              readOnly: true
            - name: data
              mountPath: /var/lib/caseway/data
            - name: tmp
              mountPath: /tmp
      volumes:
        - name: pii-keys
          secret:
            secretName: {{ .Values.secrets.piiKeys.name }}
            defaultMode: 0400
            items:
              - key: {{ .Values.secrets.piiKeys.key }}
                path: keys
        - name: data
          emptyDir:
            sizeLimit: 64Mi
        - name: tmp
          emptyDir:
            sizeLimit: 64Mi
{{- end }}
