{{/*
Shared helpers. Component templates pass (dict "ctx" $ "component" "<name>")
so one definition renders every component the same way.
*/}}

{{- define "aiaudit.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* At most 44 characters: "-integrity-headless" (19) must still fit Kubernetes' 63, and a
cut component name made two components' objects one (review, 2026-12-05). */}}
{{- define "aiaudit.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 44 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 44 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 44 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "aiaudit.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Name of a component's objects: <fullname>-<component>. */}}
{{- define "aiaudit.componentName" -}}
{{- printf "%s-%s" (include "aiaudit.fullname" .ctx) .component }}
{{- end }}

{{- define "aiaudit.selectorLabels" -}}
app.kubernetes.io/name: {{ include "aiaudit.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end }}

{{- define "aiaudit.labels" -}}
helm.sh/chart: {{ include "aiaudit.chart" .ctx }}
{{ include "aiaudit.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: aiaudit
{{- with .ctx.Values.global.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Image of a component: its own repository if set, else the shared one; then its own
digest or tag if set, else the shared digest, else the shared tag (appVersion when empty). A
digest pins the image (repository@sha256:...): a tag can be pushed again, a digest cannot. */}}
{{- define "aiaudit.image" -}}
{{- $shared := .ctx.Values.aiaudit.image }}
{{- $own := dict }}
{{- if .component }}{{ $own = (index .ctx.Values .component).image | default dict }}{{ end }}
{{- $repo := default $shared.repository $own.repository }}
{{- with .ctx.Values.global.image.registry }}{{ $repo = printf "%s/%s" (trimSuffix "/" .) $repo }}{{ end }}
{{- $digests := dict "aiaudit.image.digest" $shared.digest }}
{{- if .component }}{{ $_ := set $digests (printf "%s.image.digest" .component) $own.digest }}{{ end }}
{{- range $name, $digest := $digests }}
{{- if and $digest (not (regexMatch "^sha256:[0-9a-f]{64}$" (toString $digest))) }}
{{- fail (printf "%s %q is not a digest: sha256: and 64 lowercase hex digits (docker buildx imagetools inspect <image> prints it)" $name (toString $digest)) }}
{{- end }}
{{- end }}
{{- if $own.digest }}
{{- printf "%s@%s" $repo $own.digest }}
{{- else if $own.tag }}
{{- printf "%s:%s" $repo (toString $own.tag) }}
{{- else if $shared.digest }}
{{- printf "%s@%s" $repo $shared.digest }}
{{- else }}
{{- printf "%s:%s" $repo (toString (default .ctx.Chart.AppVersion $shared.tag)) }}
{{- end }}
{{- end }}

{{- define "aiaudit.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "aiaudit.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The gRPC service a component serves: its readiness probe asks for it by name. */}}
{{- define "aiaudit.grpcService" -}}
{{- $services := dict "ingest" "aiaudit.ingest.v1.IngestService" "search" "aiaudit.search.v1.SearchService" "integrity" "aiaudit.integrity.v1.IntegrityService" "alerting" "aiaudit.alerting.v1.AlertingService" }}
{{- get $services . }}
{{- end }}

{{/* Paths inside the containers; the config file refers to them. */}}
{{- define "aiaudit.configDir" -}}/etc/aiaudit/config{{- end }}
{{- define "aiaudit.tlsDir" -}}/etc/aiaudit/tls{{- end }}
{{- define "aiaudit.authDir" -}}/etc/aiaudit/auth{{- end }}
{{- define "aiaudit.ipKeyDir" -}}/etc/aiaudit/ip-pseudonym{{- end }}
{{- define "aiaudit.dataDir" -}}/var/lib/aiaudit{{- end }}
{{- define "aiaudit.checkpointDir" -}}/var/lib/aiaudit-checkpoints{{- end }}
{{- define "aiaudit.backendCADir" -}}/etc/aiaudit/backend-ca{{- end }}
{{- define "aiaudit.backendCAFile" -}}{{ include "aiaudit.backendCADir" . }}/ca.crt{{- end }}

{{/*
The backends' CA (aiaudit.backendCA), for every pod that reaches PostgreSQL, Vault or
OpenSearch: each client's own variable names the mounted file. libpq reads PGSSLROOTCERT
(a URL's sslrootcert still wins), hvac VAULT_CACERT (both Vault clients of the server are
hvac's), and search its opensearch_ca_file unless the config or extraEnv names another.
A variable the component's extraEnv sets is left to it. Pass (dict "ctx" $ "component" c),
c empty for the migration Job.
*/}}
{{- define "aiaudit.backendCAEnv" -}}
{{- $ := .ctx }}
{{- if $.Values.aiaudit.backendCA.existingSecret }}
{{- $file := include "aiaudit.backendCAFile" $ }}
{{- $extra := list }}
{{- if .component }}
{{- range (index $.Values .component).extraEnv }}{{ $extra = append $extra (toString .name) }}{{ end }}
{{- end }}
{{- if not (has "PGSSLROOTCERT" $extra) }}
- name: PGSSLROOTCERT
  value: {{ $file | quote }}
{{- end }}
{{- if and .component (not (has "VAULT_CACERT" $extra)) }}
- name: VAULT_CACERT
  value: {{ $file | quote }}
{{- end }}
{{- if and (eq (toString .component) "search") (not (has "AIAUDIT_SEARCH_OPENSEARCH_CA_FILE" $extra)) (not (hasKey (dig "search" dict $.Values.aiaudit.config) "opensearch_ca_file")) }}
- name: AIAUDIT_SEARCH_OPENSEARCH_CA_FILE
  value: {{ $file | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/* The volume and mount of the backends' CA: a fixed file name whatever the Secret's key. */}}
{{- define "aiaudit.backendCAVolume" -}}
{{- with .Values.aiaudit.backendCA }}
{{- if .existingSecret }}
- name: backend-ca
  secret:
    secretName: {{ .existingSecret }}
    defaultMode: 0444
    items:
      - key: {{ required "aiaudit.backendCA.key is required with aiaudit.backendCA.existingSecret" .key }}
        path: ca.crt
{{- end }}
{{- end }}
{{- end }}
{{- define "aiaudit.backendCAMount" -}}
{{- if .Values.aiaudit.backendCA.existingSecret }}
- name: backend-ca
  mountPath: {{ include "aiaudit.backendCADir" . }}
  readOnly: true
{{- end }}
{{- end }}

{{/*
The spec of a migration Job (retries, deadline, pod template), shared by the hook Job
(migration-job.yaml) and the scheduled one (migration-cronjob.yaml) so the two cannot
drift. The pod uses nothing the chart creates (no ConfigMap, the namespace's default
ServiceAccount; hooks run before the release's other objects exist): only the admin Secret
(and aiaudit.backendCA's). The URL reaches `aiaudit db migrate` through AIAUDIT_DATABASE_URL
rather than --database-url, which would show the password in the pod spec. Pass
(dict "ctx" $ "command" C): C is the `aiaudit db` command, `migrate` (the hook: schema,
roles and partitions) or `partitions` (the schedule: partitions only, never the schema,
so an image changed between upgrades, or a rollback, cannot move it).
*/}}
{{- define "aiaudit.migrationJobSpec" -}}
{{- $ctx := .ctx }}
{{- $m := $ctx.Values.migration }}
{{- $a := $ctx.Values.aiaudit -}}
backoffLimit: {{ $m.backoffLimit }}
activeDeadlineSeconds: {{ $m.activeDeadlineSeconds }}
template:
  metadata:
    labels:
      {{- include "aiaudit.labels" (dict "ctx" $ctx "component" "migrate") | nindent 6 }}
    {{- with $m.podAnnotations }}
    annotations:
      {{- toYaml . | nindent 6 }}
    {{- end }}
  spec:
    restartPolicy: Never
    automountServiceAccountToken: false
    {{- with $ctx.Values.global.imagePullSecrets }}
    imagePullSecrets:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    {{- with $ctx.Values.global.priorityClassName }}
    priorityClassName: {{ . }}
    {{- end }}
    {{- with $m.nodeSelector }}
    nodeSelector:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    {{- with $m.tolerations }}
    tolerations:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    securityContext:
      {{- toYaml $a.podSecurityContext | nindent 6 }}
    containers:
      - name: migrate
        image: {{ include "aiaudit.image" (dict "ctx" $ctx "component" "") }}
        imagePullPolicy: {{ $a.image.pullPolicy }}
        args:
          - db
          - {{ .command }}
          {{- with $m.extraArgs }}
          {{- toYaml . | nindent 10 }}
          {{- end }}
        env:
          - name: AIAUDIT_DATABASE_URL
            valueFrom:
              secretKeyRef:
                name: {{ required "migration.existingSecret is required when migration.enabled=true" $m.existingSecret }}
                key: {{ $m.key }}
          - name: AIAUDIT_LOG_LEVEL
            value: {{ $a.config.log_level | default "INFO" | quote }}
          {{- if eq (toString $a.config.allow_insecure) "true" }}
          # The components' opt-out: db refuses a database off loopback without
          # sslmode=verify-full (exit 2) unless told, and the Job reads no config file.
          - name: AIAUDIT_ALLOW_INSECURE
            value: "true"
          {{- end }}
          {{- with (include "aiaudit.backendCAEnv" (dict "ctx" $ctx "component" "") | trim) }}
          {{- . | nindent 10 }}
          {{- end }}
        {{- with $m.resources }}
        resources:
          {{- toYaml . | nindent 10 }}
        {{- end }}
        securityContext:
          {{- toYaml $a.containerSecurityContext | nindent 10 }}
        volumeMounts:
          - name: tmp
            mountPath: /tmp
          {{- with (include "aiaudit.backendCAMount" $ctx | trim) }}
          {{- . | nindent 10 }}
          {{- end }}
    volumes:
      - name: tmp
        emptyDir:
          sizeLimit: {{ $a.tmpSizeLimit }}
      {{- with (include "aiaudit.backendCAVolume" $ctx | trim) }}
      # The CA of the database's certificate (aiaudit.backendCA), as the components have it.
      {{- . | nindent 6 }}
      {{- end }}
{{- end }}

{{/*
The TLS Secret a component mounts and its keys, as YAML (fromYaml it): <component>.tls when it
names a Secret, its empty keys taken from aiaudit.tls; else the shared aiaudit.tls. One Secret
shared by every component put the same private key in each pod, so a compromised search pod
could serve as integrity or present integrity's client certificate (review, 2026-12-05).
*/}}
{{- define "aiaudit.tlsSecret" -}}
{{- $shared := .ctx.Values.aiaudit.tls }}
{{- $own := dig "tls" dict (index .ctx.Values .component) }}
{{- if dig "existingSecret" "" $own }}
{{- toYaml (dict "existingSecret" $own.existingSecret "certKey" (default $shared.certKey $own.certKey) "keyKey" (default $shared.keyKey $own.keyKey) "caKey" (default $shared.caKey $own.caKey)) }}
{{- else }}
{{- toYaml (dict "existingSecret" $shared.existingSecret "certKey" $shared.certKey "keyKey" $shared.keyKey "caKey" $shared.caKey) }}
{{- end }}
{{- end }}

{{/*
The CA file search checks integrity's certificate against, when the chart must name it: without
mutual TLS search trusts its own tls_cert_file (tls_client_ca_file is unset), which is
integrity's certificate only when both mount the same one. With certificates of their own it
takes the CA of its Secret (caKey), unless the config or search's extraEnv names one. Empty:
nothing to name (under mTLS search takes its tls_client_ca_file, the same CA file).
*/}}
{{- define "aiaudit.integrityCAFile" -}}
{{- $ := .ctx }}
{{- $a := $.Values.aiaudit }}
{{- if and (eq .component "search") $a.tls.enabled (not $a.tls.mutual) $.Values.integrity.enabled }}
{{- $extra := list }}
{{- range $.Values.search.extraEnv }}{{ $extra = append $extra (toString .name) }}{{ end }}
{{- if not (or (has "AIAUDIT_SEARCH_INTEGRITY_CA_FILE" $extra) (hasKey (dig "search" dict $a.config) "integrity_ca_file")) }}
{{- $search := include "aiaudit.tlsSecret" (dict "ctx" $ "component" "search") | fromYaml }}
{{- $integrity := include "aiaudit.tlsSecret" (dict "ctx" $ "component" "integrity") | fromYaml }}
{{- if or (ne $search.existingSecret $integrity.existingSecret) (ne $search.certKey $integrity.certKey) }}
{{- printf "%s/ca.crt" (include "aiaudit.tlsDir" $) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The config file: the user's settings plus the keys the chart owns (listen
address, data dir, TLS paths). The database URL never goes here: it comes from
a Secret as AIAUDIT_DATABASE_URL.
*/}}
{{- define "aiaudit.configYaml" -}}
{{- $owned := dict "address" (printf "[::]:%d" (int .Values.aiaudit.grpcPort)) "health_address" (printf "[::]:%d" (int .Values.aiaudit.healthPort)) "data_dir" (include "aiaudit.dataDir" .) }}
{{- if .Values.aiaudit.apiKeys.existingSecret }}
{{- $_ := set $owned "api_keys_file" (printf "%s/api-keys.yaml" (include "aiaudit.authDir" .)) }}
{{- end }}
{{- with .Values.aiaudit.contentKeys }}
{{- if and .existingSecret (ne (toString (dig "content_keys" "" $.Values.aiaudit.config)) "none") }}
{{- $_ := set $owned "content_keys" "vault" }}
{{- $_ := set $owned "content_vault_mount" .transitMount }}
{{- $_ := set $owned "content_vault_key" .key }}
{{- end }}
{{- end }}
{{- $tls := .Values.aiaudit.tls }}
{{- if $tls.enabled }}
{{- $_ := set $owned "tls_cert_file" (printf "%s/tls.crt" (include "aiaudit.tlsDir" .)) }}
{{- $_ := set $owned "tls_key_file" (printf "%s/tls.key" (include "aiaudit.tlsDir" .)) }}
{{- if $tls.mutual }}
{{- $_ := set $owned "tls_client_ca_file" (printf "%s/ca.crt" (include "aiaudit.tlsDir" .)) }}
{{- /* The CA signs every component's certificate: with search's its own, integrity serves
only a certificate naming search's Services (the one component that calls it), unless the
config gives its own list. With the shared certificate every pod presents the same names. */}}
{{- $v := .Values }}
{{- if and $v.search.enabled $v.integrity.enabled (dig "tls" "existingSecret" "" $v.search) (not (hasKey (dig "integrity" dict $v.aiaudit.config) "client_names")) }}
{{- $search := include "aiaudit.componentName" (dict "ctx" . "component" "search") }}
{{- $ns := .Release.Namespace }}
{{- $_ := set $owned "integrity" (dict "client_names" (list $search (printf "%s-headless" $search) (printf "%s.%s.svc" $search $ns) (printf "%s-headless.%s.svc" $search $ns))) }}
{{- end }}
{{- end }}
{{- end }}
{{- toYaml (merge $owned (deepCopy .Values.aiaudit.config)) }}
{{- end }}

{{/* Fails the render on settings the pods would crash on, or that would lose data. */}}
{{- define "aiaudit.validate" -}}
{{- $a := .Values.aiaudit }}
{{- if eq (int $a.healthPort) (int $a.grpcPort) }}
{{- fail (printf "aiaudit.healthPort and aiaudit.grpcPort are both %d: the server cannot bind the plaintext health port on the gRPC port, and every pod would fail to start; give them different ports" (int $a.grpcPort)) }}
{{- end }}
{{- $np := .Values.networkPolicy }}
{{- if and $np.enabled $np.egress.enabled (not $a.database.embedded) (not $np.egress.to) }}
{{- fail "networkPolicy.egress.enabled=true with an empty networkPolicy.egress.to lets the pods reach DNS (and search integrity) only: not PostgreSQL, OpenSearch, Vault or alert sinks; list them in networkPolicy.egress.to, or set networkPolicy.egress.enabled=false" }}
{{- end }}
{{- range $key := list "address" "health_address" "data_dir" "database_url" "api_keys_file" "tls_cert_file" "tls_key_file" "tls_client_ca_file" }}
{{- if hasKey $a.config $key }}
{{- fail (printf "aiaudit.config.%s is set by the chart (database_url comes from aiaudit.database.existingSecret for ingest and aiaudit.recorderDatabase.existingSecret for the others, tls_* from aiaudit.tls and <component>.tls); remove it" $key) }}
{{- end }}
{{- end }}
{{- /* Every setting that carries a credential (a password, a token, a URL that is a bearer
credential or holds a login), with the values that give it from a Secret instead. A webhook
URL passed (review, 2026-12-05): Slack's and Teams' incoming-webhook URLs let whoever reads
them post, and the ConfigMap is readable by anyone who may read the namespace's config. */}}
{{- $secretSettings := dict
  "ingest" (dict "privacy_database_url" "ingest.privacyDatabase.existingSecret (key ingest.privacyDatabase.key), passed as AIAUDIT_INGEST_PRIVACY_DATABASE_URL")
  "search" (dict
    "database_url" "search.database.existingSecret (key search.database.key), passed as AIAUDIT_SEARCH_DATABASE_URL"
    "opensearch_url" "aiaudit.opensearch.existingSecret (key aiaudit.opensearch.urlKey), passed as AIAUDIT_SEARCH_OPENSEARCH_URL"
    "opensearch_username" "aiaudit.opensearch.existingSecret (key aiaudit.opensearch.usernameKey), passed as AIAUDIT_SEARCH_OPENSEARCH_USERNAME"
    "opensearch_password" "aiaudit.opensearch.existingSecret (key aiaudit.opensearch.passwordKey), passed as AIAUDIT_SEARCH_OPENSEARCH_PASSWORD")
  "integrity" (dict
    "database_url" "integrity.database.existingSecret (key integrity.database.key), passed as AIAUDIT_INTEGRITY_DATABASE_URL")
  "alerting" (dict
    "database_url" "alerting.database.existingSecret (key alerting.database.key), passed as AIAUDIT_ALERTING_DATABASE_URL"
    "webhook_url" "alerting.webhook.existingSecret (key alerting.webhook.urlKey), passed as AIAUDIT_ALERTING_WEBHOOK_URL"
    "webhook_secret" "alerting.webhook.existingSecret (key alerting.webhook.secretKey), passed as AIAUDIT_ALERTING_WEBHOOK_SECRET") }}
{{- range $section, $keys := $secretSettings }}
{{- range $key, $instead := $keys }}
{{- if hasKey (dig $section dict $a.config) $key }}
{{- fail (printf "aiaudit.config.%s.%s would put a secret in the ConfigMap: remove it, put the value in a Secret and name that Secret in %s" $section $key $instead) }}
{{- end }}
{{- end }}
{{- end }}
{{- /* Any other URL with user info (user:password@ or token@) in the config file. */}}
{{- $userinfo := "^[a-zA-Z][a-zA-Z0-9+.-]*://[^/?#@]*@" }}
{{- range $key, $value := $a.config }}
{{- $values := dict $key $value }}
{{- if kindIs "map" $value }}{{ $values = dict }}{{ range $k, $v := $value }}{{ $_ := set $values (printf "%s.%s" $key $k) $v }}{{ end }}{{ end }}
{{- range $path, $v := $values }}
{{- range $item := (kindIs "slice" $v | ternary $v (list $v)) }}
{{- if regexMatch $userinfo (toString $item) }}
{{- fail (printf "aiaudit.config.%s is a URL with a login in it (user info before '@'), which would put a credential in the ConfigMap: remove it, put the value in a Secret and give it as %s in the extraEnv of the components that read it, with valueFrom.secretKeyRef" $path (printf "AIAUDIT_%s" (upper (replace "." "_" $path)))) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- /* extraEnv is in the Deployment, as readable as the ConfigMap: a credential's variable
takes valueFrom.secretKeyRef, not a literal value. */}}
{{- range $name := list "ingest" "search" "integrity" "alerting" }}
{{- range $env := (index $.Values $name).extraEnv }}
{{- if and (kindIs "map" $env) (hasKey $env "value") }}
{{- if or (regexMatch "(^|_)(PASSWORD|TOKEN|SECRET)$|DATABASE_URL$|WEBHOOK_URL$|OPENSEARCH_URL$" (upper (toString $env.name))) (regexMatch $userinfo (toString $env.value)) }}
{{- fail (printf "%s.extraEnv %s has a literal value, which would put a credential in the Deployment: put it in a Secret and give it with valueFrom.secretKeyRef%s" $name $env.name (eq (toString $env.name) "AIAUDIT_ALERTING_WEBHOOK_URL" | ternary " (or alerting.webhook.existingSecret)" "")) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- if and (not $a.database.embedded) (not $a.contentKeys.existingSecret) (ne (toString (dig "content_keys" "" $a.config)) "none") }}
{{- fail "aiaudit.contentKeys.existingSecret is required to seal stored content (a Vault/OpenBao Transit key: see aiaudit content-keys bootstrap-vault); or set aiaudit.config.content_keys=none to store it in clear" }}
{{- end }}
{{- if hasKey (dig "ingest" dict $a.config) "ip_pseudonym_key_file" }}
{{- fail "aiaudit.config.ingest.ip_pseudonym_key_file is set by the chart: give the key through ingest.ipPseudonymKey.existingSecret" }}
{{- end }}
{{- if and (eq (toString (dig "ingest" "ip_address" "" $a.config)) "pseudonymise") (not .Values.ingest.ipPseudonymKey.existingSecret) }}
{{- fail "ingest.ipPseudonymKey.existingSecret is required with aiaudit.config.ingest.ip_address=pseudonymise (32 random bytes, the same for every ingest pod: a key made in a pod would die with it, and every pseudonym with it)" }}
{{- end }}
{{- /* The Vault token files. A path, no secret; but the server takes a token file over the
token variable, so one named here (or in an extraEnv) beside the chart's token from the Secret
left that token unused without a word: the chart passes one or the other, as the values say. */}}
{{- $tokenFiles := list
  (dict "values" "aiaudit.vault" "own" $a.vault "setting" "integrity.vault_token_file" "set" (hasKey (dig "integrity" dict $a.config) "vault_token_file") "fileVar" "AIAUDIT_INTEGRITY_VAULT_TOKEN_FILE" "tokenVar" "VAULT_TOKEN" "components" (list "integrity"))
  (dict "values" "aiaudit.contentKeys" "own" $a.contentKeys "setting" "content_vault_token_file" "set" (hasKey $a.config "content_vault_token_file") "fileVar" "AIAUDIT_CONTENT_VAULT_TOKEN_FILE" "tokenVar" "AIAUDIT_CONTENT_VAULT_TOKEN" "components" (list "ingest" "search" "integrity" "alerting")) }}
{{- range $t := $tokenFiles }}
{{- $file := toString (dig "tokenFile" "" $t.own) }}
{{- if $t.set }}
{{- fail (printf "aiaudit.config.%s is set by the chart: give the path as %s.tokenFile (the chart then passes no token from %s.existingSecret)" $t.setting $t.values $t.values) }}
{{- end }}
{{- if $file }}
{{- if not (hasPrefix "/" $file) }}
{{- fail (printf "%s.tokenFile %q is not an absolute path: give the file's path in the container (e.g. /vault/secrets/token, where the Vault Agent Injector writes)" $t.values $file) }}
{{- end }}
{{- if not $t.own.existingSecret }}
{{- fail (printf "%s.tokenFile needs %s.existingSecret: the Vault address comes from it (its token key is then unused)" $t.values $t.values) }}
{{- end }}
{{- end }}
{{- range $name := $t.components }}
{{- range $env := (index $.Values $name).extraEnv }}
{{- $var := toString $env.name }}
{{- if eq $var $t.fileVar }}
{{- fail (printf "%s.extraEnv %s: the chart passes the token file, and then no token from %s.existingSecret; give the path as %s.tokenFile" $name $var $t.values $t.values) }}
{{- end }}
{{- if and $file (eq $var $t.tokenVar) }}
{{- fail (printf "%s.extraEnv %s and %s.tokenFile both give the Vault token, and the server would take the file's without a word: keep one" $name $var $t.values) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- /* The pod's grace period covers the preStop sleep, then the server's drain (the grace
period less the sleep, less 5 s to stop the components: aiaudit.shutdownGrace). One too short
for both was given a drain of 1 s (review, 2026-12-06), and one no longer than the sleep none:
SIGKILL came with the end of the sleep, mid-call. */}}
{{- range $name := list "ingest" "search" "integrity" "alerting" }}
{{- $c := index $.Values $name }}
{{- $least := add (int $a.preStopSeconds) 6 }}
{{- if and $c.enabled (lt (int $c.terminationGracePeriodSeconds) (int $least)) }}
{{- fail (printf "%s.terminationGracePeriodSeconds (%d) leaves the server no time to drain calls in flight: the preStop sleep (aiaudit.preStopSeconds, %d s) and 5 s to stop come out of it first; give it at least %d" $name (int $c.terminationGracePeriodSeconds) (int $a.preStopSeconds) (int $least)) }}
{{- end }}
{{- end }}
{{- $insecure := eq (toString $a.config.allow_insecure) "true" }}
{{- if and (not $a.tls.enabled) (not $insecure) }}
{{- fail "aiaudit.tls.enabled=false serves plaintext on the pod network: set aiaudit.config.allow_insecure=true to accept that (dev only)" }}
{{- end }}
{{- $unauthenticated := eq (toString $a.config.allow_unauthenticated) "true" }}
{{- if not (or $a.apiKeys.existingSecret $a.config.oidc_issuer $unauthenticated) }}
{{- fail "aiaudit.apiKeys.existingSecret is required unless aiaudit.config.oidc_issuer authenticates callers (or aiaudit.config.allow_unauthenticated=true lets every caller in as admin: dev only)" }}
{{- end }}
{{- $withoutOwn := list }}
{{- range $name := list "ingest" "search" "integrity" "alerting" }}
{{- $own := dig "tls" dict (index $.Values $name) }}
{{- if and (dig "existingSecret" "" $own) (not $a.tls.enabled) }}
{{- fail (printf "%s.tls.existingSecret is set but aiaudit.tls.enabled=false: %s would serve plaintext, not with its certificate; unset it, or turn TLS on" $name $name) }}
{{- end }}
{{- range $key := list "certKey" "keyKey" "caKey" }}
{{- if and (dig $key "" $own) (not (dig "existingSecret" "" $own)) }}
{{- fail (printf "%s.tls.%s names a key of %s.tls.existingSecret, which is unset (the shared aiaudit.tls.existingSecret takes aiaudit.tls.%s): set both, or neither" $name $key $name $key) }}
{{- end }}
{{- end }}
{{- if and (index $.Values $name).enabled (not (dig "existingSecret" "" $own)) }}
{{- $withoutOwn = append $withoutOwn $name }}
{{- end }}
{{- end }}
{{- if and $a.tls.enabled $withoutOwn (not $a.tls.existingSecret) }}
{{- fail (printf "aiaudit.tls.existingSecret is required when aiaudit.tls.enabled=true, for the components without a certificate of their own (<component>.tls.existingSecret): %s" (join ", " $withoutOwn)) }}
{{- end }}
{{- if $a.database.embedded }}
{{- $enabled := list }}
{{- range $name := list "ingest" "search" "integrity" "alerting" }}
{{- if (index $.Values $name).enabled }}{{- $enabled = append $enabled $name }}{{- end }}
{{- end }}
{{- if gt (len $enabled) 1 }}
{{- fail (printf "aiaudit.database.embedded keeps the store in one pod's emptyDir, which %s would each have a copy of: enable one component, or use PostgreSQL" (join ", " $enabled)) }}
{{- end }}
{{- range $name := list "ingest" "search" "integrity" "alerting" }}
{{- $c := index $.Values $name }}
{{- if and $c.enabled (or $c.autoscaling.enabled (gt (int $c.replicas) 1)) }}
{{- fail (printf "aiaudit.database.embedded keeps the store in one pod's emptyDir: %s must run 1 replica without autoscaling" $name) }}
{{- end }}
{{- if or (dig "database" "existingSecret" "" $c) (dig "privacyDatabase" "existingSecret" "" $c) }}
{{- fail (printf "aiaudit.database.embedded has no PostgreSQL logins: unset %s's own database secret" $name) }}
{{- end }}
{{- end }}
{{- else }}
{{- if not $a.database.existingSecret }}
{{- fail "aiaudit.database.existingSecret is required (or aiaudit.database.embedded=true for dev)" }}
{{- end }}
{{- $recorders := list }}
{{- range $name := list "search" "integrity" "alerting" }}
{{- if (index $.Values $name).enabled }}{{- $recorders = append $recorders $name }}{{- end }}
{{- end }}
{{- if and $recorders (not $a.recorderDatabase.existingSecret) }}
{{- fail (printf "aiaudit.recorderDatabase.existingSecret is required with %s on PostgreSQL: their AIAUDIT_DATABASE_URL is a LOGIN role in aiaudit_recorder, which appends only the suite's own records (aiaudit.database's aiaudit_writer is ingest's alone: it could append forged interactions to any log)" (join ", " $recorders)) }}
{{- end }}
{{- range $name, $role := dict "search" "aiaudit_consumer" "integrity" "aiaudit_notary" "alerting" "aiaudit_alerting" }}
{{- $c := index $.Values $name }}
{{- if and $c.enabled (not $c.database.existingSecret) }}
{{- fail (printf "%s.database.existingSecret is required: the suite's login of %s (aiaudit_recorder, from aiaudit.recorderDatabase) cannot write what %s writes; give it a LOGIN role in %s" $name $name $name $role) }}
{{- end }}
{{- end }}
{{- if and $.Values.search.enabled (not $a.opensearch.existingSecret) }}
{{- fail "aiaudit.opensearch.existingSecret is required with search on PostgreSQL: without it each search pod keeps an index of its own in an emptyDir, empty at every start" }}
{{- end }}
{{- if and $.Values.integrity.enabled (not $a.vault.existingSecret) }}
{{- fail "aiaudit.vault.existingSecret is required with integrity on PostgreSQL: without it each notary pod signs with a key file of its own in an emptyDir, a new key at every start" }}
{{- end }}
{{- if and $.Values.integrity.enabled (not $.Values.integrity.checkpoints.existingClaim) }}
{{- fail "integrity.checkpoints.existingClaim is required with integrity on PostgreSQL: the notary writes a copy of every checkpoint, which would fill the pod's emptyDir and go with the pod" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Seconds the server lets calls in flight finish once the preStop sleep is over: what
terminationGracePeriodSeconds leaves, less 5 s to stop the components. */}}
{{- define "aiaudit.shutdownGrace" -}}
{{- $c := index .ctx.Values .component }}
{{- max 1 (sub (sub (int $c.terminationGracePeriodSeconds) (int .ctx.Values.aiaudit.preStopSeconds)) 5) }}
{{- end }}

{{/* Environment of a component: secrets by reference only. */}}
{{- define "aiaudit.env" -}}
{{- $ := .ctx }}
{{- $a := $.Values.aiaudit }}
{{- if not $a.database.embedded }}
{{- /* The suite's login: ingest's is a writer; the others append only the suite's own
records (access records, rule changes), so theirs is a recorder, which may not append an
interaction to a log. */}}
{{- $suite := eq .component "ingest" | ternary $a.database $a.recorderDatabase }}
- name: AIAUDIT_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ $suite.existingSecret }}
      key: {{ $suite.key }}
{{- end }}
{{- if and (eq .component "search") $a.opensearch.existingSecret }}
- name: AIAUDIT_SEARCH_BACKEND
  value: opensearch
- name: AIAUDIT_SEARCH_OPENSEARCH_URL
  valueFrom:
    secretKeyRef:
      name: {{ $a.opensearch.existingSecret }}
      key: {{ $a.opensearch.urlKey }}
- name: AIAUDIT_SEARCH_OPENSEARCH_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ $a.opensearch.existingSecret }}
      key: {{ $a.opensearch.usernameKey }}
- name: AIAUDIT_SEARCH_OPENSEARCH_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $a.opensearch.existingSecret }}
      key: {{ $a.opensearch.passwordKey }}
{{- end }}
{{- with include "aiaudit.integrityCAFile" . }}
- name: AIAUDIT_SEARCH_INTEGRITY_CA_FILE
  value: {{ . | quote }}
{{- end }}
{{- if eq .component "search" }}
- name: AIAUDIT_SEARCH_INTEGRITY_ADDRESS
  {{- if $.Values.integrity.enabled }}
  value: {{ printf "%s:%v" (include "aiaudit.componentName" (dict "ctx" $ "component" "integrity")) $.Values.integrity.service.port | quote }}
  {{- else }}
  value: none
  {{- end }}
{{- end }}
- name: AIAUDIT_SHUTDOWN_GRACE_SECONDS
  value: {{ include "aiaudit.shutdownGrace" . | quote }}
{{- include "aiaudit.backendCAEnv" . }}
{{- if and (eq .component "integrity") (dig "checkpoints" "existingClaim" "" (index $.Values .component)) }}
- name: AIAUDIT_INTEGRITY_CHECKPOINT_DIR
  value: {{ include "aiaudit.checkpointDir" $ | quote }}
{{- end }}
{{- if and (eq .component "integrity") $a.vault.existingSecret }}
- name: AIAUDIT_INTEGRITY_SIGNER
  value: vault
- name: AIAUDIT_INTEGRITY_VAULT_ADDR
  valueFrom:
    secretKeyRef:
      name: {{ $a.vault.existingSecret }}
      key: {{ $a.vault.addressKey }}
{{- if $a.vault.tokenFile }}
- name: AIAUDIT_INTEGRITY_VAULT_TOKEN_FILE
  value: {{ $a.vault.tokenFile | quote }}
{{- else }}
- name: VAULT_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ $a.vault.existingSecret }}
      key: {{ $a.vault.tokenKey }}
{{- end }}
- name: AIAUDIT_INTEGRITY_VAULT_MOUNT
  value: {{ $a.vault.transitMount | quote }}
{{- end }}
{{- if and $a.contentKeys.existingSecret (ne (toString (dig "content_keys" "" $a.config)) "none") }}
- name: AIAUDIT_CONTENT_VAULT_ADDR
  valueFrom:
    secretKeyRef:
      name: {{ $a.contentKeys.existingSecret }}
      key: {{ $a.contentKeys.addressKey }}
{{- if $a.contentKeys.tokenFile }}
- name: AIAUDIT_CONTENT_VAULT_TOKEN_FILE
  value: {{ $a.contentKeys.tokenFile | quote }}
{{- else }}
- name: AIAUDIT_CONTENT_VAULT_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ $a.contentKeys.existingSecret }}
      key: {{ $a.contentKeys.tokenKey }}
{{- end }}
{{- end }}
{{- $own := index $.Values .component }}
{{- if and (not $a.database.embedded) (dig "database" "existingSecret" "" $own) }}
- name: {{ printf "AIAUDIT_%s_DATABASE_URL" (upper .component) }}
  valueFrom:
    secretKeyRef:
      name: {{ $own.database.existingSecret }}
      key: {{ $own.database.key }}
{{- end }}
{{- if and (not $a.database.embedded) (dig "privacyDatabase" "existingSecret" "" $own) }}
- name: AIAUDIT_INGEST_PRIVACY_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ $own.privacyDatabase.existingSecret }}
      key: {{ $own.privacyDatabase.key }}
{{- end }}
{{- if and (eq .component "alerting") (dig "webhook" "existingSecret" "" $own) }}
- name: AIAUDIT_ALERTING_WEBHOOK_URL
  valueFrom:
    secretKeyRef:
      name: {{ $own.webhook.existingSecret }}
      key: {{ $own.webhook.urlKey }}
- name: AIAUDIT_ALERTING_WEBHOOK_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ $own.webhook.existingSecret }}
      key: {{ $own.webhook.secretKey }}
{{- end }}
{{- if and (eq .component "ingest") (dig "ipPseudonymKey" "existingSecret" "" $own) }}
- name: AIAUDIT_INGEST_IP_PSEUDONYM_KEY_FILE
  value: {{ printf "%s/key" (include "aiaudit.ipKeyDir" $) | quote }}
{{- end }}
{{- if $a.telemetry.otlpEndpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ $a.telemetry.otlpEndpoint | quote }}
- name: OTEL_SERVICE_NAME
  value: {{ printf "aiaudit-%s" .component | quote }}
{{- end }}
{{- with (index $.Values .component).extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Deployment of one component. */}}
{{- define "aiaudit.deployment" -}}
{{- $ := .ctx }}
{{- $name := .component }}
{{- $c := index $.Values $name }}
{{- $a := $.Values.aiaudit }}
{{- if $c.enabled }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "aiaudit.componentName" . }}
  namespace: {{ $.Release.Namespace }}
  labels:
    {{- include "aiaudit.labels" . | nindent 4 }}
spec:
  {{- if not $c.autoscaling.enabled }}
  replicas: {{ $c.replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  {{- with dig "strategy" dict $c }}
  strategy:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "aiaudit.selectorLabels" . | nindent 6 }}
  template:
    metadata:
      annotations:
        # Roll the pods when the config file changes; the server reads it once.
        checksum/config: {{ include "aiaudit.configYaml" $ | sha256sum }}
        {{- with $c.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      labels:
        {{- include "aiaudit.labels" . | nindent 8 }}
        {{- with $c.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "aiaudit.serviceAccountName" $ }}
      automountServiceAccountToken: {{ $.Values.serviceAccount.automountToken }}
      {{- with $.Values.global.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $.Values.global.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      securityContext:
        {{- toYaml $a.podSecurityContext | nindent 8 }}
      terminationGracePeriodSeconds: {{ $c.terminationGracePeriodSeconds }}
      containers:
        - name: {{ $name }}
          image: {{ include "aiaudit.image" . }}
          imagePullPolicy: {{ $a.image.pullPolicy }}
          {{- if $a.preStopSeconds }}
          # Endpoints drop the pod while it still serves: without this wait the server
          # stopped listening first, and gateways saw refused connections at each rollout.
          lifecycle:
            preStop:
              exec:
                command: ["sleep", "{{ $a.preStopSeconds }}"]
          {{- end }}
          args:
            - serve
            - --config
            - {{ include "aiaudit.configDir" $ }}/config.yaml
            - --services
            - {{ $name }}
            {{- with $c.extraArgs }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          ports:
            - name: grpc
              containerPort: {{ $a.grpcPort }}
              protocol: TCP
            - name: health
              containerPort: {{ $a.healthPort }}
              protocol: TCP
          {{- with (include "aiaudit.env" . | trim) }}
          env:
            {{- . | nindent 12 }}
          {{- end }}
          # Native gRPC health checks (grpc.health.v1) on the plaintext health-only
          # port (kubelet probes cannot speak TLS). Startup and liveness ask for
          # the whole server (""), readiness for this component's service.
          startupProbe:
            grpc:
              port: {{ $a.healthPort }}
            {{- toYaml $a.probes.startup | nindent 12 }}
          livenessProbe:
            grpc:
              port: {{ $a.healthPort }}
            {{- toYaml $a.probes.liveness | nindent 12 }}
          readinessProbe:
            grpc:
              port: {{ $a.healthPort }}
              service: {{ include "aiaudit.grpcService" $name }}
            {{- toYaml $a.probes.readiness | nindent 12 }}
          {{- with $c.resources }}
          resources:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          securityContext:
            {{- toYaml $a.containerSecurityContext | nindent 12 }}
          volumeMounts:
            - name: config
              mountPath: {{ include "aiaudit.configDir" $ }}
              readOnly: true
            {{- if $a.tls.enabled }}
            - name: tls
              mountPath: {{ include "aiaudit.tlsDir" $ }}
              readOnly: true
            {{- end }}
            {{- if $a.apiKeys.existingSecret }}
            - name: api-keys
              mountPath: {{ include "aiaudit.authDir" $ }}
              readOnly: true
            {{- end }}
            # The root filesystem is read-only: these are the only writable paths.
            - name: data
              mountPath: {{ include "aiaudit.dataDir" $ }}
            - name: tmp
              mountPath: /tmp
            {{- if and (eq .component "integrity") (dig "checkpoints" "existingClaim" "" $c) }}
            - name: checkpoints
              mountPath: {{ include "aiaudit.checkpointDir" $ }}
            {{- end }}
            {{- if and (eq .component "ingest") (dig "ipPseudonymKey" "existingSecret" "" $c) }}
            - name: ip-pseudonym-key
              mountPath: {{ include "aiaudit.ipKeyDir" $ }}
              readOnly: true
            {{- end }}
            {{- with (include "aiaudit.backendCAMount" $ | trim) }}
            {{- . | nindent 12 }}
            {{- end }}
            {{- with $c.extraVolumeMounts }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
      volumes:
        - name: config
          configMap:
            name: {{ include "aiaudit.fullname" $ }}-config
        {{- if $a.tls.enabled }}
        {{- $tls := include "aiaudit.tlsSecret" . | fromYaml }}
        # The component's own certificate (<component>.tls), else the shared one (aiaudit.tls).
        - name: tls
          secret:
            secretName: {{ $tls.existingSecret }}
            defaultMode: 0440
            # Fixed file names whatever the Secret's keys: the config file points at them.
            items:
              - key: {{ $tls.certKey }}
                path: tls.crt
              - key: {{ $tls.keyKey }}
                path: tls.key
              {{- if or $a.tls.mutual (include "aiaudit.integrityCAFile" .) }}
              - key: {{ $tls.caKey }}
                path: ca.crt
              {{- end }}
        {{- end }}
        {{- if $a.apiKeys.existingSecret }}
        # SHA-256 digests of API keys with their tenants and roles (no key itself).
        - name: api-keys
          secret:
            secretName: {{ $a.apiKeys.existingSecret }}
            defaultMode: 0440
            items:
              - key: {{ $a.apiKeys.key }}
                path: api-keys.yaml
        {{- end }}
        - name: data
          emptyDir:
            sizeLimit: {{ $a.dataSizeLimit }}
        - name: tmp
          emptyDir:
            sizeLimit: {{ $a.tmpSizeLimit }}
        {{- if and (eq .component "ingest") (dig "ipPseudonymKey" "existingSecret" "" $c) }}
        # The key of ingest.ip_address pseudonymise: the same bytes in every ingest pod.
        - name: ip-pseudonym-key
          secret:
            secretName: {{ $c.ipPseudonymKey.existingSecret }}
            defaultMode: 0440
            items:
              - key: {{ $c.ipPseudonymKey.key }}
                path: key
        {{- end }}
        {{- if and (eq .component "integrity") (dig "checkpoints" "existingClaim" "" $c) }}
        # The append-only copy of every checkpoint: outside the pod, outside the database.
        - name: checkpoints
          persistentVolumeClaim:
            claimName: {{ $c.checkpoints.existingClaim }}
        {{- end }}
        {{- with (include "aiaudit.backendCAVolume" $ | trim) }}
        # The CA of the backends' certificates (aiaudit.backendCA): not secret, but whoever
        # replaces it can impersonate them.
        {{- . | nindent 8 }}
        {{- end }}
        {{- with $c.extraVolumes }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- with $c.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      affinity:
      {{- with $c.affinity }}
        {{- toYaml . | nindent 8 }}
      {{- else }}
        # Replicas in different zones where the scheduler can. The spread below is the pod's
        # own, which turns off the scheduler's default zone spreading; a spread constraint on
        # the zone would not do: nodes without the zone label (kind, bare metal) would then
        # be left out of the scoring of every constraint, the spread across nodes too.
        podAntiAffinity:
          preferredDuringSchedulingIgnoredDuringExecution:
            - weight: 100
              podAffinityTerm:
                topologyKey: topology.kubernetes.io/zone
                labelSelector:
                  matchLabels:
                    {{- include "aiaudit.selectorLabels" . | nindent 20 }}
      {{- end }}
      {{- with $c.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      topologySpreadConstraints:
      {{- with $c.topologySpreadConstraints }}
        {{- toYaml . | nindent 8 }}
      {{- else }}
        # Replicas on different nodes where the scheduler can: two on one node are one
        # failure away from none (the default when none are given).
        - maxSkew: 1
          topologyKey: kubernetes.io/hostname
          whenUnsatisfiable: ScheduleAnyway
          labelSelector:
            matchLabels:
              {{- include "aiaudit.selectorLabels" . | nindent 14 }}
      {{- end }}
{{- end }}
{{- end }}

{{/*
Services of one component: a ClusterIP one for plain clients, and a headless
one whose DNS lists every ready pod, for gRPC clients that balance per call
(round_robin) instead of pinning one long-lived connection to one pod.
*/}}
{{- define "aiaudit.service" -}}
{{- $ := .ctx }}
{{- $c := index $.Values .component }}
{{- if $c.enabled }}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "aiaudit.componentName" . }}
  namespace: {{ $.Release.Namespace }}
  labels:
    {{- include "aiaudit.labels" . | nindent 4 }}
    {{- with $c.service.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with $c.service.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  type: {{ $c.service.type }}
  ports:
    - name: grpc
      port: {{ $c.service.port }}
      targetPort: grpc
      protocol: TCP
      appProtocol: grpc
  selector:
    {{- include "aiaudit.selectorLabels" . | nindent 4 }}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ include "aiaudit.componentName" . }}-headless
  namespace: {{ $.Release.Namespace }}
  labels:
    {{- include "aiaudit.labels" . | nindent 4 }}
spec:
  clusterIP: None
  ports:
    - name: grpc
      port: {{ $c.service.port }}
      targetPort: grpc
      protocol: TCP
      appProtocol: grpc
  selector:
    {{- include "aiaudit.selectorLabels" . | nindent 4 }}
{{- end }}
{{- end }}

{{/* HorizontalPodAutoscaler of one component. */}}
{{- define "aiaudit.hpa" -}}
{{- $ := .ctx }}
{{- $c := index $.Values .component }}
{{- $as := $c.autoscaling }}
{{- if and $c.enabled $as.enabled }}
{{- if not (or $as.targetCPUUtilizationPercentage $as.targetMemoryUtilizationPercentage) }}
{{- fail (printf "%s.autoscaling needs targetCPUUtilizationPercentage or targetMemoryUtilizationPercentage" .component) }}
{{- end }}
{{- if gt (int $as.minReplicas) (int $as.maxReplicas) }}
{{- fail (printf "%s.autoscaling.minReplicas (%d) is greater than %s.autoscaling.maxReplicas (%d): the API server would refuse the HorizontalPodAutoscaler" .component (int $as.minReplicas) .component (int $as.maxReplicas)) }}
{{- end }}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "aiaudit.componentName" . }}
  namespace: {{ $.Release.Namespace }}
  labels:
    {{- include "aiaudit.labels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "aiaudit.componentName" . }}
  minReplicas: {{ $as.minReplicas }}
  maxReplicas: {{ $as.maxReplicas }}
  metrics:
    {{- with $as.targetCPUUtilizationPercentage }}
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ . }}
    {{- end }}
    {{- with $as.targetMemoryUtilizationPercentage }}
    - type: Resource
      resource:
        name: memory
        target:
          type: Utilization
          averageUtilization: {{ . }}
    {{- end }}
  {{- with $as.behavior }}
  behavior:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- end }}

{{/* PodDisruptionBudget of one component. */}}
{{- define "aiaudit.pdb" -}}
{{- $ := .ctx }}
{{- $c := index $.Values .component }}
{{- if and $c.enabled $c.podDisruptionBudget.enabled }}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "aiaudit.componentName" . }}
  namespace: {{ $.Release.Namespace }}
  labels:
    {{- include "aiaudit.labels" . | nindent 4 }}
spec:
  {{- if hasKey $c.podDisruptionBudget "minAvailable" }}
  minAvailable: {{ $c.podDisruptionBudget.minAvailable }}
  {{- else }}
  maxUnavailable: {{ $c.podDisruptionBudget.maxUnavailable }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "aiaudit.selectorLabels" . | nindent 6 }}
{{- end }}
{{- end }}
