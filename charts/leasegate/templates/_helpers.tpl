{{/* Chart name. */}}
{{- define "leasegate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name: release-chart, or the release name if it already contains the chart name. */}}
{{- define "leasegate.fullname" -}}
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

{{- define "leasegate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "leasegate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "leasegate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "leasegate.labels" -}}
helm.sh/chart: {{ include "leasegate.chart" . }}
{{ include "leasegate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: admission-webhook
app.kubernetes.io/part-of: leasegate
{{- end -}}

{{- define "leasegate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "leasegate.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Cluster-scoped objects are named after the namespace too, so two releases of the same name never collide. */}}
{{- define "leasegate.clusterName" -}}
{{- printf "%s-%s" .Release.Namespace (include "leasegate.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "leasegate.webhookConfigName" -}}
{{- include "leasegate.clusterName" . -}}
{{- end -}}

{{- define "leasegate.tlsSecretName" -}}
{{- if .Values.tls.existingSecret -}}
{{- .Values.tls.existingSecret -}}
{{- else -}}
{{- printf "%s-tls" (include "leasegate.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "leasegate.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* lookupFailurePolicy: explicit, or derived from the API server's failurePolicy. */}}
{{- define "leasegate.lookupFailurePolicy" -}}
{{- if .Values.config.lookupFailurePolicy -}}
{{- .Values.config.lookupFailurePolicy -}}
{{- else if eq .Values.webhook.failurePolicy "Ignore" -}}
allow
{{- else -}}
deny
{{- end -}}
{{- end -}}

{{/* Namespaces the API server never sends to the webhook: always kube-system and the release namespace. */}}
{{- define "leasegate.excludedNamespaces" -}}
{{- $ns := list "kube-system" .Release.Namespace -}}
{{- $ns = concat $ns .Values.config.exemptNamespaces .Values.webhook.excludeNamespaces -}}
{{- $ns | uniq | toJson -}}
{{- end -}}

{{/*
Validation with messages a person can act on; rendered (as nothing) by the webhook template.
The schema checks types and enums; these are the rules that need more than one value.
*/}}
{{- define "leasegate.validate" -}}
{{- $forbiddenGroups := list "coordination.k8s.io" "events.k8s.io" "authentication.k8s.io" "authorization.k8s.io" "admissionregistration.k8s.io" -}}
{{- $forbiddenResources := list "*/*" "leases" "events" -}}
{{- $fences := include "leasegate.fences" . | eq "true" -}}
{{- range $i, $rule := .Values.webhook.resources -}}
{{- range $rule.apiGroups -}}
{{- if has . $forbiddenGroups -}}
{{- fail (printf "webhook.resources[%d].apiGroups: %q must not be intercepted (Leases are the locks themselves, judged by their own webhook; Events and reviews are written by the webhook and the API server)" $i .) -}}
{{- end -}}
{{- if and (eq . "*") (not $fences) -}}
{{- fail (printf "webhook.resources[%d].apiGroups: \"*\" would intercept coordination.k8s.io Leases under a profile whose objects carry no marker; list the API groups to lock" $i) -}}
{{- end -}}
{{- end -}}
{{- range $rule.resources -}}
{{- $base := (splitList "/" .) | first -}}
{{- if and (eq . "*") (not $fences) -}}
{{- fail (printf "webhook.resources[%d].resources: \"*\" would intercept every write under a profile whose objects carry no marker; list the resources to lock" $i) -}}
{{- end -}}
{{- if or (has . $forbiddenResources) (has $base $forbiddenResources) (hasSuffix "reviews" $base) -}}
{{- fail (printf "webhook.resources[%d].resources: %q must not be intercepted by leasegate (never leases, events, *reviews or the wildcard)" $i .) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if ge (float64 .Values.config.lookupTimeoutSeconds) (float64 .Values.webhook.timeoutSeconds) -}}
{{- fail (printf "config.lookupTimeoutSeconds (%v) must be below webhook.timeoutSeconds (%v), or the API server gives up before the webhook can answer" .Values.config.lookupTimeoutSeconds .Values.webhook.timeoutSeconds) -}}
{{- end -}}
{{- if and .Values.certManager.enabled .Values.tls.existingSecret -}}
{{- fail "certManager.enabled and tls.existingSecret are exclusive: choose one way to provide the serving certificate" -}}
{{- end -}}
{{- if and .Values.tls.existingSecret (not .Values.tls.caBundle) -}}
{{- fail "tls.existingSecret needs tls.caBundle (base64 of the PEM CA that signed it), or the API server cannot verify the webhook" -}}
{{- end -}}
{{- if and .Values.tls.caBundle (not .Values.tls.existingSecret) -}}
{{- fail "tls.caBundle is only used with tls.existingSecret" -}}
{{- end -}}
{{- if and (not .Values.serviceAccount.create) (not .Values.serviceAccount.name) -}}
{{- fail "serviceAccount.name is required when serviceAccount.create is false" -}}
{{- end -}}
{{- if lt (float64 .Values.terminationGracePeriodSeconds) (float64 .Values.config.gracefulTimeoutSeconds) -}}
{{- fail (printf "terminationGracePeriodSeconds (%v) must be at least config.gracefulTimeoutSeconds (%v), or in-flight requests are killed on shutdown" .Values.terminationGracePeriodSeconds .Values.config.gracefulTimeoutSeconds) -}}
{{- end -}}
{{- end -}}

{{/* CEL string literal list: ["a", "b"] (JSON string escapes are valid CEL). */}}
{{- define "leasegate.celList" -}}
[{{- range $i, $s := . -}}{{- if $i -}}, {{ end -}}{{- $s | toJson -}}{{- end -}}]
{{- end -}}

{{/*
The webhooks' names, rules, objectSelectors and own matchConditions, as
webhook/registration.py webhook_entries() builds them (tests/unit/charts
compares the two; the CEL comes from files/admission.json, which that module
writes). Under a profile that fences: marked objects' updates and deletes,
and lock Leases; creates and scales are judged by the reservation policy
(policies.yaml). Under a profile without markers one webhook judges every write.
*/}}
{{- define "leasegate.admission" -}}
{{- .Files.Get "files/admission.json" -}}
{{- end -}}

{{- define "leasegate.resources" -}}
{{- $admission := include "leasegate.admission" . | fromJson -}}
{{- .Values.webhook.resources | default (index $admission.defaultResources .Values.config.profile) | toJson -}}
{{- end -}}

{{- define "leasegate.webhookEntries" -}}
{{- $admission := include "leasegate.admission" . | fromJson -}}
{{- $name := .Values.webhook.name -}}
{{- $plain := list -}}{{- $withStatus := list -}}
{{- range include "leasegate.resources" . | fromJsonArray -}}
{{- $status := list -}}{{- range .resources -}}{{- $status = append $status (printf "%s/status" .) -}}{{- end -}}
{{- $withStatus = append $withStatus (dict "apiGroups" .apiGroups "resources" (concat .resources $status)) -}}
{{- $plain = append $plain (dict "apiGroups" .apiGroups "resources" .resources) -}}
{{- end -}}
{{- $entries := list -}}
{{- if not (include "leasegate.fences" . | eq "true") -}}
{{- $rules := list -}}
{{- range $withStatus -}}{{- $rules = append $rules (merge (dict "operations" (list "CREATE" "UPDATE" "DELETE")) .) -}}{{- end -}}
{{- $entries = append $entries (dict "name" $name "rules" (concat $rules $admission.scaleRules) "objectSelector" .Values.webhook.objectSelector "matchConditions" list) -}}
{{- else -}}
{{- $updates := list -}}
{{- range $withStatus -}}{{- $updates = append $updates (merge (dict "operations" (list "UPDATE" "DELETE")) .) -}}{{- end -}}
{{- $marker := dict "key" "leasegate.io/locked" "operator" "Exists" -}}
{{- $objects := deepCopy .Values.webhook.objectSelector -}}
{{- $_ := set $objects "matchExpressions" (append ($objects.matchExpressions | default list) $marker) -}}
{{- $entries = append $entries (dict "name" $name "rules" $updates "objectSelector" $objects "matchConditions" $admission.markedObjectConditions) -}}
{{- $leases := list (dict "apiGroups" (list "coordination.k8s.io") "resources" (list "leases") "operations" (list "CREATE" "UPDATE" "DELETE")) -}}
{{- $lockLabel := dict "matchExpressions" (list (dict "key" "leasegate.io/transaction" "operator" "Exists")) -}}
{{- $rightful := index $admission.rightfulLeaseWrite (.Values.config.requireMembers | toString) -}}
{{- $skip := list (dict "name" "leasegate-skip-rightful-holder" "expression" (printf "!(%s)" $rightful)) -}}
{{- $entries = append $entries (dict "name" (printf "leases.%s" $name) "rules" $leases "objectSelector" $lockLabel "matchConditions" $skip) -}}
{{- end -}}
{{- $out := list -}}
{{- range $entries -}}
{{- $rules := list -}}
{{- range .rules -}}{{- $rules = append $rules (merge (dict "apiVersions" (list "*") "scope" "*") .) -}}{{- end -}}
{{- $out = append $out (merge (dict "rules" $rules) .) -}}
{{- end -}}
{{- $out | toJson -}}
{{- end -}}

{{/* What the configured profile means (lockcore.profiles.LockProfile, via files/admission.json): fences, holderRecord. */}}
{{- define "leasegate.profile" -}}
{{- $profiles := (include "leasegate.admission" . | fromJson).profiles -}}
{{- if not (hasKey $profiles .Values.config.profile) -}}
{{- fail (printf "config.profile: %q is not one of %s" .Values.config.profile (keys $profiles | sortAlpha | join ", ")) -}}
{{- end -}}
{{- get $profiles .Values.config.profile | toJson -}}
{{- end -}}

{{/* Whether the profile stamps markers (lockcore.profiles.LockProfile.fences). */}}
{{- define "leasegate.fences" -}}
{{- (include "leasegate.profile" . | fromJson).fences -}}
{{- end -}}
