#!/usr/bin/env python3
"""Validates deploy/ (or the copy named on the command line).

Every resource kustomization.yaml lists is checked:
  * core kinds against Kubernetes' own schemas, strictly (unknown fields are errors), with kubernetes-validate;
  * the Prometheus Operator kinds against Tests/Fixtures/deploy/*.schema.json;
  * the PrometheusRule's groups with `promtool check rules`;
  * the least-privilege contract docs/running-in-a-cluster.md describes (capabilities, probes, no token, no RBAC)
    and the metric names the alerts may use.
Prints one line per problem and exits 1 when there is any, 0 with a summary line otherwise.
Usage: scripts/validate-deploy.py [DEPLOY_DIR]
"""
import json
import pathlib
import re
import subprocess
import sys
import tempfile

import jsonschema
import yaml

REPO = pathlib.Path(__file__).resolve().parent.parent
SCHEMAS = REPO / "Tests" / "Fixtures" / "deploy"
CRD_SCHEMAS = {"PodMonitor": "podmonitor.schema.json", "PrometheusRule": "prometheusrule.schema.json"}
# The metrics `iptaudit node --listen` serves (docs/running-in-a-cluster.md); an alert on any other name is a typo.
METRICS = {
    "iptaudit_pod_capture_ok", "iptaudit_pod_findings", "iptaudit_pods", "iptaudit_audit_duration_seconds",
    "iptaudit_namespaces_unreadable", "iptaudit_last_audit_timestamp_seconds", "iptaudit_audit_failures_total",
}
CAPABILITIES = {"NET_ADMIN", "NET_RAW", "SYS_ADMIN", "SYS_PTRACE"}
ARGS = ["node", "--listen", "0.0.0.0:9180", "--interval", "60s"]
RBAC_KINDS = {"ServiceAccount", "Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"}



def kubernetes_version():
    """The newest Kubernetes whose schemas kubernetes-validate bundles (apps/v1 and v1 kinds only, stable since 1.9)."""
    import kubernetes_validate.utils
    return kubernetes_validate.utils.latest_version()


def core_validate(doc):
    """Kubernetes' schema for the kind, strict: returns a list of problems."""
    import kubernetes_validate
    try:
        kubernetes_validate.validate(doc, kubernetes_version(), strict=True)
    except kubernetes_validate.ValidationError as e:
        path = "/".join(str(p) for p in e.path)
        return [f"{path or '(document)'}: {e.message}"]
    except kubernetes_validate.SchemaNotFoundError as e:
        return [f"no Kubernetes schema: {e}"]
    return []


def crd_validate(doc):
    schema = json.loads((SCHEMAS / CRD_SCHEMAS[doc["kind"]]).read_text())
    validator = jsonschema.Draft7Validator(schema)
    return [f"{'/'.join(str(p) for p in e.absolute_path) or '(document)'}: {e.message}"
            for e in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))]


def check_daemonset(ds):
    problems = []
    pod = ds.get("spec", {}).get("template", {}).get("spec", {})
    if pod.get("hostPID") is not True:
        problems.append("hostPID must be true: the pods' /proc/PID/ns/net are opened through the node's /proc")
    if pod.get("hostNetwork"):
        problems.append("hostNetwork must not be set: namespaces are entered through /proc")
    if pod.get("automountServiceAccountToken") is not False:
        problems.append("automountServiceAccountToken must be false: the auditor uses no Kubernetes API")
    if pod.get("serviceAccountName"):
        problems.append("no serviceAccountName: the auditor needs no API access")
    if not any(t.get("operator") == "Exists" and not t.get("key") for t in pod.get("tolerations", [])):
        problems.append("tolerations need `operator: Exists` (no key) so every node runs an auditor")
    containers = pod.get("containers", [])
    if len(containers) != 1:
        return problems + [f"expected one container, found {len(containers)}"]
    c = containers[0]
    if c.get("args") != ARGS:
        problems.append(f"args must be {ARGS}, found {c.get('args')}")
    if c.get("image") != "iptaudit:latest":
        problems.append("image must be the placeholder iptaudit:latest (kustomization.yaml's images: names the real one)")
    sc = c.get("securityContext", {})
    caps = sc.get("capabilities", {})
    if caps.get("drop") != ["ALL"]:
        problems.append("capabilities.drop must be [ALL]")
    if set(caps.get("add", [])) != CAPABILITIES or len(caps.get("add", [])) != len(CAPABILITIES):
        problems.append(f"capabilities.add must be exactly {sorted(CAPABILITIES)}, found {caps.get('add')}")
    for key, want in (("privileged", False), ("allowPrivilegeEscalation", False), ("readOnlyRootFilesystem", True)):
        if sc.get(key) is not want:
            problems.append(f"securityContext.{key} must be {str(want).lower()}")
    ports = {p.get("name"): p.get("containerPort") for p in c.get("ports", [])}
    if ports.get("metrics") != 9180:
        problems.append("the container must expose port 9180 named metrics")
    for probe in ("livenessProbe", "readinessProbe"):
        get = c.get(probe, {}).get("httpGet", {})
        if get.get("path") != "/healthz" or get.get("port") not in ("metrics", 9180):
            problems.append(f"{probe} must GET /healthz on the metrics port")
    resources = c.get("resources", {})
    for part in ("requests", "limits"):
        if not {"cpu", "memory"} <= set(resources.get(part, {})):
            problems.append(f"resources.{part} must set cpu and memory")
    return problems


def check_selectors(docs):
    """The Service and the PodMonitor must select the DaemonSet's pods, on the port it names."""
    problems = []
    daemonsets = [d for _, d in docs if d.get("kind") == "DaemonSet"]
    if not daemonsets:
        return problems
    labels = daemonsets[0].get("spec", {}).get("template", {}).get("metadata", {}).get("labels", {})
    for resource, d in docs:
        kind, name = d.get("kind"), d.get("metadata", {}).get("name")
        if kind == "Service":
            selector = d.get("spec", {}).get("selector", {})
        elif kind == "PodMonitor":
            selector = d.get("spec", {}).get("selector", {}).get("matchLabels", {})
        else:
            continue
        if not selector or any(labels.get(k) != v for k, v in selector.items()):
            problems.append(f"{resource}: {kind} {name}: its selector {selector} does not select the DaemonSet's pods {labels}")
    return problems


def check_rules(rule, workdir):
    problems = []
    groups = rule.get("spec", {}).get("groups", [])
    exprs = [r.get("expr", "") for g in groups for r in g.get("rules", [])]
    for expr in exprs:
        for name in sorted(set(re.findall(r"\biptaudit_[a-z_]+", str(expr))) - METRICS):
            problems.append(f"alert expression uses {name}, which iptaudit does not serve")
    if not any(re.search(r"iptaudit_pod_capture_ok\s*==\s*0", str(e)) for e in exprs):
        problems.append("no alert on iptaudit_pod_capture_ok == 0 (meshed pods whose capture is broken)")
    if not any("iptaudit_namespaces_unreadable" in str(e) for e in exprs):
        problems.append("no alert on iptaudit_namespaces_unreadable")
    rules_file = pathlib.Path(workdir) / "rules.yaml"
    rules_file.write_text(yaml.safe_dump({"groups": groups}))
    try:
        check = subprocess.run(["promtool", "check", "rules", str(rules_file)], capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        return problems + ["promtool is not installed (scripts/install-deps.sh installs Debian's prometheus package)"]
    if check.returncode != 0:
        text = (check.stdout + check.stderr).strip().replace(str(rules_file), "groups")
        problems.append("promtool check rules: " + " | ".join(line for line in text.splitlines() if line.strip()))
    return problems


def main():
    deploy = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else REPO / "deploy")
    problems = []
    kustomization = yaml.safe_load((deploy / "kustomization.yaml").read_text())
    if not any(i.get("name") == "iptaudit" for i in kustomization.get("images", [])):
        problems.append("kustomization.yaml: images: needs an entry named iptaudit (users point it at their image)")
    docs = []
    for resource in kustomization.get("resources", []):
        path = deploy / resource
        try:
            loaded = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        except (OSError, yaml.YAMLError) as e:
            problems.append(f"{resource}: {str(e).splitlines()[0]}")
            continue
        docs += [(resource, d) for d in loaded]
    with tempfile.TemporaryDirectory() as workdir:
        for resource, doc in docs:
            kind = doc.get("kind") if isinstance(doc, dict) else None
            name = f"{resource}: {kind} {doc.get('metadata', {}).get('name') if isinstance(doc, dict) else '?'}"
            if kind is None:
                problems.append(f"{resource}: not a Kubernetes object")
                continue
            if kind in RBAC_KINDS:
                problems.append(f"{name}: the auditor needs no API access, so no RBAC objects or ServiceAccount")
            found = crd_validate(doc) if kind in CRD_SCHEMAS else core_validate(doc)
            if kind == "DaemonSet":
                found += check_daemonset(doc)
            if kind == "PrometheusRule":
                found += check_rules(doc, workdir)
            problems += [f"{name}: {p}" for p in found]
    problems += check_selectors([(r, d) for r, d in docs if isinstance(d, dict)])
    kinds = sorted(d.get("kind", "?") for _, d in docs if isinstance(d, dict))
    for needed in ("DaemonSet", "Service", "PodMonitor", "PrometheusRule"):
        if needed not in kinds:
            problems.append(f"no {needed} among the resources kustomization.yaml lists")
    for p in problems:
        print(p)
    if problems:
        return 1
    print(f"ok: {len(docs)} resources valid ({', '.join(kinds)}) against Kubernetes {kubernetes_version()} and the operator schemas")
    return 0


if __name__ == "__main__":
    sys.exit(main())
