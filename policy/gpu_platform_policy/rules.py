"""The platform's rules as CrossGuard policies: one validation function and one policy object each.

Every violation message names the resource, the rule and the fix. Rules read properties through
:mod:`.values` (plain data, secrets as markers, unknowns skipped until ``pulumi up`` knows them) and
their thresholds and exemptions through :mod:`.config`.

Resource policies see a resource's inputs before it is created; stack policies see every
resource's outputs (and the root ``pulumi:pulumi:Stack`` resource, whose outputs are the stack
outputs) once the preview or update has run. A rule that needs to look at other resources (which
images the stack builds, which namespaces have a NetworkPolicy) is a stack policy.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Secret,
    StackValidationArgs,
    StackValidationPolicy,
)

from .config import EXEMPT_NAMES, PRODUCTION_STACKS, STRING_LIST, WORKLOAD_NAMESPACES, schema, settings
from .values import (
    as_dict,
    as_list,
    containers,
    dig,
    is_secret,
    is_unknown,
    matches_any,
    object_name,
    plain,
    pod_template,
    reveal,
    stack_of,
)

STACK_TYPE = "pulumi:pulumi:Stack"
IMAGE_TYPE = "docker-build:index:Image"
FIREWALL_TYPE = "civo:index/firewall:Firewall"
K8S_SECRET_TYPE = "kubernetes:core/v1:Secret"  # pragma: allowlist secret (a type token)
NAMESPACE_TYPE = "kubernetes:core/v1:Namespace"
SERVICE_TYPE = "kubernetes:core/v1:Service"
DEPLOYMENT_TYPE = "kubernetes:apps/v1:Deployment"
PDB_TYPE = "kubernetes:policy/v1:PodDisruptionBudget"
#: GitHub secret resources and the inputs that carry the secret's plaintext.
GITHUB_SECRET_FIELDS: Mapping[str, tuple[str, ...]] = {
    f"github:index/{kind[0].lower()}{kind[1:]}:{kind}": ("value", "plaintextValue")
    for kind in ("ActionsSecret", "ActionsEnvironmentSecret", "ActionsOrganizationSecret", "DependabotSecret",
                 "DependabotOrganizationSecret", "CodespacesSecret", "CodespacesOrganizationSecret",
                 "CodespacesUserSecret")
}
_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


def message(rule: str, subject: str, problem: str, fix: str) -> str:
    """The one shape of every violation: which resource, what is wrong under which rule, how to fix it."""
    return f"{subject}: {problem} (rule {rule}). Fix: {fix}"


def _config(policy_schema: PolicyConfigSchema, args: ResourceValidationArgs | StackValidationArgs) -> dict[str, Any]:
    return settings(policy_schema, args.get_config())


def _is_production(urn: str, config: Mapping[str, Any]) -> bool:
    return matches_any(stack_of(urn), config["productionStacks"])


def _namespace(props: Mapping[str, Any]) -> Any:
    namespace = dig(props, "metadata", "namespace")
    return "default" if namespace is None else namespace


def _in_namespaces(props: Mapping[str, Any], patterns: Iterable[str]) -> bool:
    """Unknown namespaces count as covered: a mandatory rule errs on the side of checking."""
    namespace = _namespace(props)
    return is_unknown(namespace) or (isinstance(namespace, str) and matches_any(namespace, patterns))


# --- GPU pods tolerate the GPU taint and select the GPU pool -------------------------------------

GPU_SCHEDULING_SCHEMA = schema({
    "gpuResource": {"type": "string", "default": "nvidia.com/gpu",
                    "description": "Extended resource a GPU pod requests."},
    "gpuTaint": {"type": "object", "default": {"key": "nvidia.com/gpu", "effect": "NoSchedule"},
                 "properties": {"key": {"type": "string"}, "value": {"type": "string"}, "effect": {"type": "string"}},
                 "required": ["key"], "description": "The taint on the GPU pool's nodes."},
    "gpuNodeSelector": {"type": "object", "additionalProperties": {"type": "string"},
                        "default": {"gpu-platform/pool": "gpu"},
                        "description": "Node labels that select the GPU pool."},
})


def _tolerates(toleration: Mapping[str, Any], taint: Mapping[str, Any]) -> bool:
    """Kubernetes' toleration matching (an empty key with Exists tolerates every taint)."""
    if toleration.get("effect") not in (None, "", taint.get("effect")):
        return False
    if toleration.get("operator") == "Exists":
        return toleration.get("key") in (None, "", taint["key"])
    return toleration.get("key") == taint["key"] and (
        taint.get("value") is None or toleration.get("value") == taint.get("value"))


def _selects(pod_spec: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """The pod can only land on nodes with ``labels``: by nodeSelector, or by required node affinity."""
    selector = as_dict(pod_spec.get("nodeSelector"))
    if all(selector.get(key) == value for key, value in labels.items()):
        return True
    terms = as_list(dig(pod_spec, "affinity", "nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution",
                        "nodeSelectorTerms"))

    def term_selects(term: Mapping[str, Any]) -> bool:
        expressions = as_list(term.get("matchExpressions"))
        return all(any(e.get("key") == key and e.get("operator") == "In" and as_list(e.get("values")) == [value]
                       for e in expressions if isinstance(e, dict)) for key, value in labels.items())

    return bool(terms) and all(isinstance(t, dict) and term_selects(t) for t in terms)


def validate_gpu_scheduling(args: ResourceValidationArgs, report: ReportViolation) -> None:
    props = plain(args.props)
    template = pod_template(args.resource_type, props)
    if template is None:
        return
    cfg = _config(GPU_SCHEDULING_SCHEMA, args)
    spec = as_dict(template.get("spec"))
    gpu_containers = [c.get("name", "?") for _, c in containers(spec)
                      if any(cfg["gpuResource"] in as_dict(dig(c, "resources", kind)) for kind in ("requests", "limits"))]
    if not gpu_containers:
        return
    subject = object_name(args.resource_type, args.name, props)
    taint, tolerations = cfg["gpuTaint"], spec.get("tolerations")
    if not is_unknown(tolerations) and not any(isinstance(t, dict) and _tolerates(t, taint)
                                               for t in as_list(tolerations)):
        report(message("gpu-pods-on-gpu-pool", subject,
                       f"containers {gpu_containers} request {cfg['gpuResource']} but the pod does not tolerate "
                       f"the GPU taint {taint['key']}:{taint.get('effect', '')}",
                       f"add the toleration {{key: {taint['key']}, operator: Exists, effect: "
                       f"{taint.get('effect', 'NoSchedule')}}} (the stack output gpuTolerations)"), None)
    if not is_unknown(spec.get("nodeSelector")) and not _selects(spec, cfg["gpuNodeSelector"]):
        report(message("gpu-pods-on-gpu-pool", subject,
                       f"containers {gpu_containers} request {cfg['gpuResource']} but the pod does not select the "
                       f"GPU pool {cfg['gpuNodeSelector']}",
                       "set nodeSelector to the stack output gpuNodeSelector"), None)


# --- Container images pinned by digest, except the images this stack builds -----------------------

IMAGE_DIGEST_SCHEMA = schema({
    "exemptImages": {**STRING_LIST, "default": [],
                     "description": "Image references (glob patterns) allowed without a digest, e.g. images "
                                    "another stack of the same team builds."},
})


def built_images(resources: Iterable[PolicyResource]) -> set[str]:
    """Every reference a docker-build Image of this stack produces: its tags and its ref."""
    refs: set[str] = set()
    for resource in resources:
        if resource.resource_type != IMAGE_TYPE:
            continue
        props = plain(resource.props)
        for ref in [props.get("ref"), *as_list(props.get("tags"))]:
            ref = reveal(ref)
            if isinstance(ref, str) and ref and not is_unknown(ref):
                refs.add(ref)
    return refs


def validate_image_digests(args: StackValidationArgs, report: ReportViolation) -> None:
    cfg = _config(IMAGE_DIGEST_SCHEMA, args)
    built = built_images(args.resources)
    for resource in args.resources:
        props = plain(resource.props)
        template = pod_template(resource.resource_type, props)
        if template is None:
            continue
        for label, container in containers(as_dict(template.get("spec"))):
            image = reveal(container.get("image"))
            if not isinstance(image, str) or is_unknown(image) or _DIGEST.search(image):
                continue
            if image in built or matches_any(image, cfg["exemptImages"]):
                continue
            report(message("images-pinned-by-digest",
                           object_name(resource.resource_type, resource.name, props),
                           f"{label} '{container.get('name', '?')}' runs image '{image}', which is not pinned by "
                           "digest and is not built by this stack",
                           "use the image's digest reference (<repository>@sha256:<digest>), build it in this "
                           "stack with docker-build, or list it in exemptImages"), resource.urn)


# --- No credential in a docker-build build arg -------------------------------------------------

BUILD_ARGS_SCHEMA = schema({
    "credentialNamePattern": {
        "type": "string", "description": "Regex (searched) for build-arg names that name a credential.",
        "default": r"(?i)(token|secret|passw(or)?d|pwd|api[-_]?key|access[-_]?key|private[-_]?key|credential|auth)"},
    "credentialValuePattern": {
        "type": "string", "description": "Regex (searched) for build-arg values that look like a credential.",
        "default": r"(hf_[A-Za-z0-9]{20,}|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_\w{20,}|glpat-[\w-]{20,}"
                   r"|AKIA[0-9A-Z]{16}|xox[abposr]-[\w-]{10,}|sk-[A-Za-z0-9_-]{20,}|-----BEGIN [A-Z ]*PRIVATE KEY)"},
})


def validate_build_args(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != IMAGE_TYPE:
        return
    cfg = _config(BUILD_ARGS_SCHEMA, args)
    name_re, value_re = re.compile(cfg["credentialNamePattern"]), re.compile(cfg["credentialValuePattern"])
    props = plain(args.props)
    build_args = props.get("buildArgs")
    if is_secret(build_args):  # a wholly secret map: every value in it is a secret
        build_args = {key: Secret(value) for key, value in as_dict(build_args).items()}
    for name, value in as_dict(build_args).items():
        revealed = reveal(value)
        if name_re.search(name):
            why = "its name says it is a credential"
        elif is_secret(value):
            why = "its value is a Pulumi secret"
        elif isinstance(revealed, str) and not is_unknown(revealed) and value_re.search(revealed):
            why = "its value looks like a credential"
        else:
            continue
        # Never echo the value: it is the credential.
        report(message("no-credentials-in-build-args", object_name(args.resource_type, args.name, props),
                       f"build arg '{name}' is a credential ({why}); build args stay in the image's history "
                       "and metadata",
                       f"remove '{name}' from buildArgs and pass it as a BuildKit secret: secrets={{'{name.lower()}': "
                       f"<value>}} with RUN --mount=type=secret,id={name.lower()} in the Dockerfile"), None)


# --- prod: data protected --------------------------------------------------------------------

PROTECTED_DATA_SCHEMA = schema({
    "productionStacks": PRODUCTION_STACKS,
    "protectedTypes": {**STRING_LIST, "description": "Resource types that hold data and must be protected.",
                       "default": ["civo:index/objectStore:ObjectStore",
                                   "civo:index/objectStoreCredential:ObjectStoreCredential"]},
})


def validate_data_protected(args: ResourceValidationArgs, report: ReportViolation) -> None:
    cfg = _config(PROTECTED_DATA_SCHEMA, args)
    if args.resource_type not in cfg["protectedTypes"] or not _is_production(args.urn, cfg):
        return
    if not args.opts.protect:
        report(message("prod-data-protected", object_name(args.resource_type, args.name, {}),
                       f"holds data in production stack '{stack_of(args.urn)}' but is not protected, so "
                       "`pulumi destroy` or a replacement would delete it",
                       "create it with pulumi.ResourceOptions(protect=True, retain_on_delete=True)"), None)


# --- prod: the Kubernetes API is not open to the internet ----------------------------------------

PUBLIC_API_SCHEMA = schema({
    "productionStacks": PRODUCTION_STACKS,
    "apiPort": {"type": "integer", "default": 6443, "description": "The Kubernetes API port."},
    "publicCidrs": {**STRING_LIST, "default": ["0.0.0.0/0", "::/0"],
                    "description": "CIDRs that mean 'the whole internet'."},
})


def _port_range_covers(port_range: Any, port: int) -> bool:
    """Civo port ranges: "6443", "1-65535", "80,443"; empty or missing means every port."""
    if port_range in (None, "", "all"):
        return True
    for part in str(port_range).split(","):
        low, _, high = part.strip().partition("-")
        try:
            if int(low) <= port <= int(high or low):
                return True
        except ValueError:
            return True  # a range we cannot read could be anything: treat it as open
    return False


def validate_public_api(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != FIREWALL_TYPE:
        return
    cfg = _config(PUBLIC_API_SCHEMA, args)
    if not _is_production(args.urn, cfg):
        return
    props = plain(args.props)
    subject = object_name(args.resource_type, args.name, props)
    port, stack = int(cfg["apiPort"]), stack_of(args.urn)  # config arrives as JSON numbers (floats)
    if props.get("createDefaultRules") in (None, True):  # the provider's default is true
        report(message("prod-api-not-public", subject,
                       f"keeps Civo's default rules in production stack '{stack}'; they are created by Civo, "
                       f"not by the program, so nothing here shows port {port} closed to the internet",
                       "set create_default_rules=False and add explicit ingress rules"), None)
    for rule in as_list(props.get("ingressRules")):
        if not isinstance(rule, dict) or str(rule.get("action", "allow")).lower() != "allow":
            continue
        if str(rule.get("protocol", "tcp")).lower() not in ("tcp", "") or not _port_range_covers(
                rule.get("portRange"), port):
            continue
        public = [c for c in as_list(rule.get("cidrs")) if c in cfg["publicCidrs"]]
        if public:
            report(message("prod-api-not-public", subject,
                           f"ingress rule '{rule.get('label', '?')}' opens port {port} to {public} in production "
                           f"stack '{stack}'",
                           "limit the rule's cidrs to your VPN/CI egress ranges (config apiAllowedCidrs)"), None)


# --- prod: no kubeconfig in the stack outputs ----------------------------------------------------

KUBECONFIG_OUTPUT_SCHEMA = schema({
    "productionStacks": PRODUCTION_STACKS,
    "allowKubeconfigOutput": {"type": "boolean", "default": False,
                              "description": "Explicit opt-in: this stack may export a kubeconfig."},
    "kubeconfigOutputNames": {**STRING_LIST, "default": ["kubeconfig", "adminKubeconfig"],
                              "description": "Output names (case-insensitive) that carry a kubeconfig."},
})
_KUBECONFIG_TEXT = re.compile(r"(?s)^(?=.*\bkind:\s*Config\b)(?=.*\bclusters:)")


def _kubeconfig_like(value: Any) -> bool:
    value = reveal(value)
    if isinstance(value, str):
        return bool(_KUBECONFIG_TEXT.search(value))
    if isinstance(value, dict):
        return any(_kubeconfig_like(v) for v in value.values())
    if isinstance(value, list):
        return any(_kubeconfig_like(v) for v in value)
    return False


def validate_kubeconfig_output(args: StackValidationArgs, report: ReportViolation) -> None:
    cfg = _config(KUBECONFIG_OUTPUT_SCHEMA, args)
    if cfg["allowKubeconfigOutput"]:
        return
    names = {name.lower() for name in cfg["kubeconfigOutputNames"]}
    for stack in (r for r in args.resources if r.resource_type == STACK_TYPE):
        if not _is_production(stack.urn, cfg):
            continue
        outputs = plain(stack.props)
        for key, value in outputs.items():
            if key.lower() in names or _kubeconfig_like(value):
                report(message("prod-no-kubeconfig-output", f"{STACK_TYPE} '{stack.name}'",
                               f"stack output '{key}' carries a kubeconfig in production stack "
                               f"'{stack_of(stack.urn)}', so every reader of the stack gets cluster credentials",
                               "stop exporting it (app teams get namespace-scoped access), or opt in "
                               "explicitly with this policy's config allowKubeconfigOutput: true"), stack.urn)


# --- Secrets take their values from Pulumi secrets ----------------------------------------------

SECRET_VALUES_SCHEMA = schema({"exemptNames": EXEMPT_NAMES})


def _plaintext_keys(value: Any) -> list[str]:
    """Keys of a Secret's data/stringData whose values are neither Pulumi secrets nor unknown yet."""
    if is_secret(value) or is_unknown(value) or value is None:
        return []
    if not isinstance(value, dict):
        return ["(whole map)"]
    return sorted(key for key, item in value.items() if not is_secret(item) and not is_unknown(item))


def validate_secret_values(args: ResourceValidationArgs, report: ReportViolation) -> None:
    fields = ("data", "stringData") if args.resource_type == K8S_SECRET_TYPE else \
        GITHUB_SECRET_FIELDS.get(args.resource_type)
    if not fields:
        return
    cfg = _config(SECRET_VALUES_SCHEMA, args)
    if matches_any(args.name, cfg["exemptNames"]):
        return
    props = plain(args.props)
    subject = object_name(args.resource_type, args.name, props)
    for field in fields:
        value = props.get(field)
        if args.resource_type == K8S_SECRET_TYPE:
            plaintext = _plaintext_keys(value)
        else:
            plaintext = [] if value is None or is_secret(value) or is_unknown(value) else ["(value)"]
        if plaintext:
            report(message("secrets-are-pulumi-secrets", subject,
                           f"'{field}' {', '.join(plaintext)} is plaintext in the program, so it is stored "
                           "unencrypted in the state and shown in diffs",
                           "pass a Pulumi secret: config.require_secret(...) or pulumi.Output.secret(...)"), None)


# --- Containers in the model and team namespaces are hardened -----------------------------------

HARDENED_SCHEMA = schema({"namespaces": WORKLOAD_NAMESPACES, "exemptNames": EXEMPT_NAMES})


def container_hardening_problems(pod_spec: Mapping[str, Any], container: Mapping[str, Any]) -> list[str]:
    """What a container lacks of: non-root, all capabilities dropped, no privilege escalation."""
    ctx, pod_ctx = as_dict(container.get("securityContext")), as_dict(pod_spec.get("securityContext"))
    problems = []
    run_as_non_root = ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot"))
    run_as_user = ctx.get("runAsUser", pod_ctx.get("runAsUser"))
    if run_as_non_root is not True and not is_unknown(run_as_non_root):
        problems.append("runAsNonRoot is not true")
    if run_as_user == 0:
        problems.append("runAsUser is 0 (root)")
    drop = as_list(dig(ctx, "capabilities", "drop"))
    if "ALL" not in drop and not is_unknown(dig(ctx, "capabilities", "drop")):
        problems.append("capabilities.drop does not contain ALL")
    if ctx.get("allowPrivilegeEscalation") is not False and not is_unknown(ctx.get("allowPrivilegeEscalation")):
        problems.append("allowPrivilegeEscalation is not false")
    if ctx.get("privileged") is True:
        problems.append("privileged is true")
    return problems


def validate_hardened(args: ResourceValidationArgs, report: ReportViolation) -> None:
    props = plain(args.props)
    template = pod_template(args.resource_type, props)
    if template is None:
        return
    cfg = _config(HARDENED_SCHEMA, args)
    if not _in_namespaces(props, cfg["namespaces"]) or matches_any(args.name, cfg["exemptNames"]):
        return
    spec = as_dict(template.get("spec"))
    for label, container in containers(spec):
        problems = container_hardening_problems(spec, container)
        if problems:
            report(message("containers-hardened", object_name(args.resource_type, args.name, props),
                           f"{label} '{container.get('name', '?')}': {'; '.join(problems)}",
                           "set securityContext {runAsNonRoot: true, allowPrivilegeEscalation: false, "
                           "capabilities: {drop: [ALL]}} on the container (runAsNonRoot may sit on the pod)"), None)


# --- hostPath volumes only for the model node cache ----------------------------------------------

HOST_PATH_SCHEMA = schema({
    "exemptNamespaces": {**STRING_LIST, "default": ["kube-system"],
                         "description": "Namespaces (glob patterns) whose workloads may mount any hostPath."},
    "modelLabel": {"type": "string", "default": "gpu-platform/model",
                   "description": "Pod label that marks a model workload (ModelDeployment sets it)."},
    "volumeNames": {**STRING_LIST, "default": ["models"],
                    "description": "Volume names a model's node cache (models[].cache: hostPath) uses."},
    "allowedRoots": {**STRING_LIST, "default": ["/var/lib/", "/mnt/", "/data/"],
                     "description": "Node directories a node cache may live under (as settings enforce)."},
})


def validate_host_path(args: ResourceValidationArgs, report: ReportViolation) -> None:
    props = plain(args.props)
    template = pod_template(args.resource_type, props)
    if template is None:
        return
    cfg = _config(HOST_PATH_SCHEMA, args)
    namespace = _namespace(props)
    if isinstance(namespace, str) and not is_unknown(namespace) and matches_any(namespace, cfg["exemptNamespaces"]):
        return
    is_model = cfg["modelLabel"] in as_dict(dig(template, "metadata", "labels"))
    for volume in as_list(dig(template, "spec", "volumes")):
        path = dig(volume, "hostPath", "path")
        if path is None or is_unknown(path):
            continue
        allowed = (is_model and volume.get("name") in cfg["volumeNames"] and isinstance(path, str)
                   and ".." not in path.split("/") and any(path.startswith(root) for root in cfg["allowedRoots"]))
        if not allowed:
            report(message("host-path-only-for-model-cache", object_name(args.resource_type, args.name, props),
                           f"volume '{volume.get('name', '?')}' mounts hostPath '{path}', which is not a model's "
                           f"node cache (a '{cfg['modelLabel']}' workload's volume {cfg['volumeNames']} under "
                           f"{cfg['allowedRoots']})",
                           "use an emptyDir or a PersistentVolumeClaim; for a model, set models[].cache: hostPath "
                           "and hostPath in the stack config instead"), None)


# --- Advisory: requests and limits on every container ---------------------------------------------

RESOURCES_SCHEMA = schema({
    "resources": {**STRING_LIST, "default": ["cpu", "memory"],
                  "description": "Resources every container sets both a request and a limit for."},
    "exemptNames": EXEMPT_NAMES,
})


def validate_requests_limits(args: ResourceValidationArgs, report: ReportViolation) -> None:
    props = plain(args.props)
    template = pod_template(args.resource_type, props)
    if template is None:
        return
    cfg = _config(RESOURCES_SCHEMA, args)
    if matches_any(args.name, cfg["exemptNames"]):
        return
    for label, container in containers(as_dict(template.get("spec"))):
        resources = container.get("resources")
        if is_unknown(resources):
            continue
        missing = [f"{kind}.{name}" for kind in ("requests", "limits") for name in cfg["resources"]
                   if name not in as_dict(dig(resources, kind))]
        if missing:
            report(message("requests-and-limits", object_name(args.resource_type, args.name, props),
                           f"{label} '{container.get('name', '?')}' sets no {', '.join(missing)}",
                           "set resources.requests and resources.limits (the scheduler and the kubelet need "
                           "both to place and protect the pod)"), None)


# --- Advisory (stack): a PodDisruptionBudget for each replicated Deployment -----------------------

PDB_SCHEMA = schema({
    "minReplicas": {"type": "integer", "minimum": 2, "default": 2,
                    "description": "Deployments with at least this many replicas need a PodDisruptionBudget."},
})


def _selector_matches(selector: Mapping[str, Any], labels: Mapping[str, Any]) -> bool:
    match_labels = as_dict(selector.get("matchLabels"))
    return bool(match_labels) and all(labels.get(key) == value for key, value in match_labels.items())


def validate_pdbs(args: StackValidationArgs, report: ReportViolation) -> None:
    cfg = _config(PDB_SCHEMA, args)
    pdbs = [plain(r.props) for r in args.resources if r.resource_type == PDB_TYPE]
    for resource in args.resources:
        if resource.resource_type != DEPLOYMENT_TYPE:
            continue
        props = plain(resource.props)
        replicas = dig(props, "spec", "replicas")
        if not isinstance(replicas, (int, float)) or replicas < cfg["minReplicas"]:
            continue
        labels = as_dict(dig(props, "spec", "template", "metadata", "labels"))
        if not any(_namespace(p) == _namespace(props) and _selector_matches(as_dict(dig(p, "spec", "selector")), labels)
                   for p in pdbs):
            report(message("pdb-for-replicated-deployments", object_name(resource.resource_type, resource.name, props),
                           f"runs {int(replicas)} replicas with no PodDisruptionBudget selecting its pods, so a "
                           "node drain may stop all of them at once",
                           "add a policy/v1 PodDisruptionBudget in the same namespace whose selector matches the "
                           "pod labels (e.g. maxUnavailable: 1)"), resource.urn)


# --- Advisory (stack): a NetworkPolicy in every namespace the stack creates -----------------------

NETWORK_POLICY_SCHEMA = schema({
    "policyTypes": {**STRING_LIST, "default": ["kubernetes:networking.k8s.io/v1:NetworkPolicy",
                                               "kubernetes:cilium.io/v2:CiliumNetworkPolicy"],
                    "description": "Resource types that count as a NetworkPolicy."},
    "exemptNamespaces": {**STRING_LIST, "default": [],
                         "description": "Namespaces (glob patterns) that need no NetworkPolicy; say why."},
})


def validate_network_policies(args: StackValidationArgs, report: ReportViolation) -> None:
    cfg = _config(NETWORK_POLICY_SCHEMA, args)
    covered = {_namespace(plain(r.props)) for r in args.resources if r.resource_type in cfg["policyTypes"]}
    for resource in args.resources:
        if resource.resource_type != NAMESPACE_TYPE:
            continue
        props = plain(resource.props)
        name = dig(props, "metadata", "name")
        if not isinstance(name, str) or is_unknown(name) or name in covered or matches_any(
                name, cfg["exemptNamespaces"]):
            continue
        report(message("network-policy-per-namespace", object_name(resource.resource_type, resource.name, props),
                       f"namespace '{name}' is created by this stack but no NetworkPolicy of the stack selects "
                       "pods in it, so every pod there accepts traffic from anywhere in the cluster",
                       "add a NetworkPolicy in the namespace (at least a default-deny ingress), or list the "
                       "namespace in exemptNamespaces with the reason"), resource.urn)


# --- Advisory (stack): every ModelDeployment has a Service and its cache settings -----------------

MODEL_DEPLOYMENT_SCHEMA = schema({
    "componentType": {"type": "string", "default": "gpu-platform:index:ModelDeployment",
                      "description": "Type token of the model component."},
    "requiredCacheEnv": {**STRING_LIST, "default": ["MODEL_NAME", "MODEL_REVISION", "S3_BUCKET", "S3_ENDPOINT_URL",
                                                    "S3_PREFIX", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"],
                         "description": "Environment the model-cache init container needs (docs/model-cache.md)."},
    "secretEnv": {**STRING_LIST, "default": ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"],
                  "description": "Of those, the ones that must come from a Secret (secretKeyRef)."},
})


def _descendants(root: PolicyResource, resources: Iterable[PolicyResource]) -> list[PolicyResource]:
    found = []
    for resource in resources:
        parent = resource.parent
        while parent is not None:
            if parent.urn == root.urn:
                found.append(resource)
                break
            parent = parent.parent
    return found


def cache_settings_problems(pod_spec: Mapping[str, Any], required: Iterable[str], secret_env: Iterable[str]) -> list[str]:
    """What the pod's init containers miss of the model-cache settings (one init container must hold all)."""
    best: list[str] | None = None
    for container in as_list(pod_spec.get("initContainers")):
        env = {e.get("name"): e for e in as_list(dig(container, "env")) if isinstance(e, dict)}
        problems = [f"{name} is not set" for name in required if name not in env]
        problems += [f"{name} is not read from a Secret" for name in secret_env
                     if name in env and dig(env[name], "valueFrom", "secretKeyRef") is None]
        if best is None or len(problems) < len(best):
            best = problems
    return ["no init container restores the model cache"] if best is None else best


def validate_model_deployments(args: StackValidationArgs, report: ReportViolation) -> None:
    cfg = _config(MODEL_DEPLOYMENT_SCHEMA, args)
    for component in (r for r in args.resources if r.resource_type == cfg["componentType"]):
        children = _descendants(component, args.resources)
        deployments = [plain(c.props) for c in children if c.resource_type == DEPLOYMENT_TYPE]
        services = [plain(c.props) for c in children if c.resource_type == SERVICE_TYPE]
        problems = []
        if not deployments:
            problems.append("it has no Deployment")
        for deployment in deployments:
            labels = as_dict(dig(deployment, "spec", "template", "metadata", "labels"))
            if not any(as_dict(dig(s, "spec", "selector")) and all(
                    labels.get(k) == v for k, v in as_dict(dig(s, "spec", "selector")).items()) for s in services):
                problems.append(f"no Service selects the pods of Deployment "
                                f"'{dig(deployment, 'metadata', 'name') or '?'}'")
            problems += cache_settings_problems(as_dict(dig(deployment, "spec", "template", "spec")),
                                                cfg["requiredCacheEnv"], cfg["secretEnv"])
        if problems:
            report(message("model-deployment-complete", f"{component.resource_type} '{component.name}'",
                           "; ".join(problems),
                           "let ModelDeployment render the model (a Service and the model-cache init containers "
                           "with the store ConfigMap and the S3 Secret); do not replace its children"),
                   component.urn)


# --- The pack's policies ----------------------------------------------------------------------

def _resource(name: str, description: str, level: EnforcementLevel, validate: Callable[..., None],
              config_schema: PolicyConfigSchema) -> ResourceValidationPolicy:
    return ResourceValidationPolicy(name=name, description=description, enforcement_level=level,
                                    validate=validate, config_schema=config_schema)


def _stack(name: str, description: str, level: EnforcementLevel, validate: Callable[..., None],
           config_schema: PolicyConfigSchema) -> StackValidationPolicy:
    return StackValidationPolicy(name=name, description=description, enforcement_level=level,
                                 validate=validate, config_schema=config_schema)


MANDATORY, ADVISORY = EnforcementLevel.MANDATORY, EnforcementLevel.ADVISORY


def build_policies() -> list[ResourceValidationPolicy | StackValidationPolicy]:
    """Fresh policy objects (the SDK keeps no state in them, but tests may build several packs)."""
    return [
        _resource("gpu-pods-on-gpu-pool", "A pod that requests a GPU tolerates the GPU taint and selects the "
                  "GPU pool.", MANDATORY, validate_gpu_scheduling, GPU_SCHEDULING_SCHEMA),
        _stack("images-pinned-by-digest", "Every container image is pinned by digest, except images this stack "
               "builds.", MANDATORY, validate_image_digests, IMAGE_DIGEST_SCHEMA),
        _resource("no-credentials-in-build-args", "No docker-build Image passes a credential as a build arg; "
                  "credentials travel as BuildKit secrets.", MANDATORY, validate_build_args, BUILD_ARGS_SCHEMA),
        _resource("prod-data-protected", "In production, the object store and its credential are protected.",
                  MANDATORY, validate_data_protected, PROTECTED_DATA_SCHEMA),
        _resource("prod-api-not-public", "In production, the firewall does not open the Kubernetes API to the "
                  "whole internet.", MANDATORY, validate_public_api, PUBLIC_API_SCHEMA),
        _stack("prod-no-kubeconfig-output", "In production, no stack output carries a kubeconfig unless the "
               "stack opts in.", MANDATORY, validate_kubeconfig_output, KUBECONFIG_OUTPUT_SCHEMA),
        _resource("secrets-are-pulumi-secrets", "Kubernetes Secrets and GitHub secrets take their values from "
                  "Pulumi secrets.", MANDATORY, validate_secret_values, SECRET_VALUES_SCHEMA),
        _resource("containers-hardened", "Containers in the model and team namespaces run as non-root, drop all "
                  "capabilities and cannot escalate privileges.", MANDATORY, validate_hardened, HARDENED_SCHEMA),
        _resource("host-path-only-for-model-cache", "hostPath volumes only where a model's settings ask for the "
                  "node cache.", MANDATORY, validate_host_path, HOST_PATH_SCHEMA),
        _resource("requests-and-limits", "Every container sets resource requests and limits.", ADVISORY,
                  validate_requests_limits, RESOURCES_SCHEMA),
        _stack("pdb-for-replicated-deployments", "Every Deployment with more than one replica has a "
               "PodDisruptionBudget.", ADVISORY, validate_pdbs, PDB_SCHEMA),
        _stack("network-policy-per-namespace", "Every namespace the stack creates has a NetworkPolicy.", ADVISORY,
               validate_network_policies, NETWORK_POLICY_SCHEMA),
        _stack("model-deployment-complete", "Every ModelDeployment has a Service and its model's cache settings.",
               ADVISORY, validate_model_deployments, MODEL_DEPLOYMENT_SCHEMA),
    ]
