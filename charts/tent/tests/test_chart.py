#!/usr/bin/env python3
"""Offline checks of charts/tent (no cluster, no helm binary):

- values.yaml (and the k3s/rke2 values below) validate against values.schema.json (jsonschema);
- with helm-python-sdk (Helm's Go SDK as a C library, `pip install helm-python-sdk`): the chart
  lints without errors and renders for default, k3s and rke2 values; bad values are refused
  by the schema through Helm itself;
- with kubernetes-validate: every rendered object validates against the Kubernetes schemas
  (strict: unknown fields are errors);
- the rendered objects say what tent needs: a privileged hostPID DaemonSet with the host's /
  at /host running `tent install --wait-for-term`, RBAC get/patch nodes, RuntimeClasses tent,
  tent-compat and (runtimeClasses.pauseless, default on) tent-pauseless selecting the labels
  tent install sets (read from cli/src/kube.rs; tent-pauseless also the containerd 2.x one)
  with overhead.podFixed; with runtimeClasses.pauseless=false no tent-pauseless;
- with pauseless, a ValidatingAdmissionPolicy (and its Deny binding) whose CEL, evaluated with
  cel-python against sample pods, refuses hostNetwork/hostIPC/hostPID pods of the class
  tent-pauseless naming the field, and leaves every other pod alone.

Without helm-python-sdk or kubernetes-validate those parts print SKIP and the rest runs.
Run: python3 charts/tent/tests/test_chart.py   (exit 1 on a failure)
"""
import copy
import json
import pathlib
import re
import sys

import yaml

CHART = pathlib.Path(__file__).resolve().parent.parent
REPO = CHART.parent.parent
K8S = "1.30.0"
FAILURES = []


def check(cond, msg):
    if not cond:
        FAILURES.append(msg)
        print(f"FAIL: {msg}")


def label(const="LABEL"):
    m = re.search(rf'pub const {const}: &str = "([^"]+)"', (REPO / "cli/src/kube.rs").read_text())
    assert m, f"{const} not found in cli/src/kube.rs"
    return m.group(1)


def values_variants(base):
    k3s = copy.deepcopy(base)
    k3s["distro"] = "k3s"
    rke2 = copy.deepcopy(base)
    rke2["distro"] = "rke2"
    rke2["containerd"]["restart"] = "systemd:rke2-agent"
    rke2["verifyImage"] = "index.docker.io/rancher/mirrored-pause:3.6"
    no_pl = copy.deepcopy(base)
    no_pl["runtimeClasses"]["pauseless"] = False
    no_policy = copy.deepcopy(base)
    no_policy["runtimeClasses"]["pauselessAdmissionPolicy"] = False
    return {"default": base, "k3s": k3s, "rke2": rke2, "no-pauseless": no_pl, "no-policy": no_policy}


def schema_checks(schema, variants):
    try:
        import jsonschema
    except ImportError:
        print("SKIP: python3-jsonschema missing: values not validated against the schema")
        return
    for name, v in variants.items():
        errs = list(jsonschema.Draft7Validator(schema).iter_errors(v))
        check(not errs, f"values {name}: {[e.message for e in errs]}")
    bad = copy.deepcopy(variants["default"])
    bad["distro"] = "ubuntu"
    check(list(jsonschema.Draft7Validator(schema).iter_errors(bad)), "schema accepts distro=ubuntu")
    bad = copy.deepcopy(variants["default"])
    bad["prefix"] = "relative/path"
    check(list(jsonschema.Draft7Validator(schema).iter_errors(bad)), "schema accepts a relative prefix")
    bad = copy.deepcopy(variants["default"])
    bad["runtimeClasses"]["pauseless"] = "yes"
    check(list(jsonschema.Draft7Validator(schema).iter_errors(bad)), "schema accepts pauseless='yes'")
    print("ok: values validate against values.schema.json; bad values are refused")


def rendered_objects(manifests):
    objs = []
    for path, text in manifests.items():
        if not path.endswith((".yaml", ".yml")):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                objs.append((path, doc))
    return objs


def structure(name, objs, values):
    by_kind = {}
    for _, o in objs:
        by_kind.setdefault(o["kind"], []).append(o)
    ds = by_kind.get("DaemonSet", [])
    check(len(ds) == 1, f"{name}: one DaemonSet, got {len(ds)}")
    if ds:
        spec = ds[0]["spec"]["template"]["spec"]
        c = spec["containers"][0]
        args = c["args"]
        check(spec.get("hostPID") is True, f"{name}: hostPID")
        check(c["securityContext"].get("privileged") is True, f"{name}: privileged")
        check(args[:2] == ["install", "--wait-for-term"], f"{name}: args {args[:2]}")
        check("--host-ns" in args and args[args.index("--host-root") + 1] == "/host", f"{name}: host root/ns")
        check(args[args.index("--distro") + 1] == values["distro"], f"{name}: --distro")
        check(args[args.index("--prefix") + 1] == values["prefix"], f"{name}: --prefix")
        ds_name = ds[0]["metadata"]["name"]
        check(args[args.index("--daemonset") + 1] == f"$(POD_NAMESPACE)/{ds_name}", f"{name}: --daemonset")
        if values["containerd"].get("restart"):
            check(args[args.index("--restart") + 1] == values["containerd"]["restart"], f"{name}: --restart")
        vols = {v["name"]: v for v in spec["volumes"]}
        check(vols.get("host", {}).get("hostPath", {}).get("path") == "/", f"{name}: host / volume")
        env = {e["name"] for e in c["env"]}
        check({"NODE_NAME", "POD_NAMESPACE"} <= env, f"{name}: env {env}")
    rcs = {o["metadata"]["name"]: o for o in by_kind.get("RuntimeClass", [])}
    want = {"tent", "tent-compat"} | ({"tent-pauseless"} if values["runtimeClasses"]["pauseless"] else set())
    check(set(rcs) == want, f"{name}: RuntimeClasses {set(rcs)}, want {want}")
    for h, rc in rcs.items():
        check(rc["handler"] == h, f"{name}: {h} handler")
        sel = {label(): "true"}
        if h == "tent-pauseless":
            sel[label("PAUSELESS_LABEL")] = "true"
        check(rc["scheduling"]["nodeSelector"] == sel, f"{name}: {h} nodeSelector {rc['scheduling']['nodeSelector']}")
        check(rc["overhead"]["podFixed"]["memory"] == values["runtimeClasses"]["overhead"]["memory"], f"{name}: {h} overhead")
    roles = by_kind.get("ClusterRole", [])
    check(any(r["resources"] == ["nodes"] and set(r["verbs"]) >= {"get", "patch"} for cr in roles for r in cr["rules"]), f"{name}: ClusterRole get/patch nodes")
    policies = by_kind.get("ValidatingAdmissionPolicy", [])
    bindings = by_kind.get("ValidatingAdmissionPolicyBinding", [])
    if values["runtimeClasses"]["pauseless"] and values["runtimeClasses"].get("pauselessAdmissionPolicy"):
        check(len(policies) == 1 and len(bindings) == 1, f"{name}: one admission policy and binding")
        if policies and bindings:
            check(bindings[0]["spec"]["policyName"] == policies[0]["metadata"]["name"], f"{name}: binding names the policy")
            check(bindings[0]["spec"]["validationActions"] == ["Deny"], f"{name}: binding denies")
            cel_checks(name, policies[0]["spec"])
    else:
        check(not policies and not bindings, f"{name}: no admission policy without pauseless")
    jobs = by_kind.get("Job", [])
    check(len(jobs) == 1 and jobs[0]["metadata"]["annotations"]["helm.sh/hook"] == "pre-delete", f"{name}: the pre-delete Job")


def cel_checks(name, spec):
    """The policy's CEL against pods as the API server sees them (absent fields absent)."""
    try:
        import celpy
    except ImportError:
        print("SKIP: cel-python missing: the admission policy's expressions not evaluated")
        return
    env = celpy.Environment()

    def run(expr, pod):
        prog = env.program(env.compile(expr))
        return bool(prog.evaluate({"object": celpy.json_to_cel(pod)}))

    def verdict(pod):
        """None when the policy does not apply, else the messages of failed validations."""
        if not all(run(c["expression"], pod) for c in spec["matchConditions"]):
            return None
        return [v["message"] for v in spec["validations"] if not run(v["expression"], pod)]

    pod = lambda **s: {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},  # noqa: E731
                       "spec": {"containers": [{"name": "c", "image": "i"}], **s}}
    pl = {"runtimeClassName": "tent-pauseless"}
    cases = [
        (pod(), None),
        (pod(hostNetwork=True), None),
        (pod(runtimeClassName="tent", hostNetwork=True, hostPID=True), None),
        (pod(**pl), []),
        (pod(**pl, hostNetwork=False, hostIPC=False, hostPID=False), []),
        (pod(**pl, hostNetwork=True), ["spec.hostNetwork"]),
        (pod(**pl, hostIPC=True), ["spec.hostIPC"]),
        (pod(**pl, hostPID=True, hostNetwork=True), ["spec.hostNetwork", "spec.hostPID"]),
    ]
    for p, want in cases:
        got = verdict(p)
        got_fields = None if got is None else [m.split(":")[0] for m in got]
        check(got_fields == want, f"{name}: admission of {p['spec']}: {got_fields}, want {want}")
    print(f"ok: {name}: the admission policy's CEL on {len(cases)} pods")


def helm_checks(variants):
    try:
        import helm_python as helm
    except ImportError:
        print("SKIP: helm-python-sdk missing (pip install helm-python-sdk): chart not linted or rendered")
        return None
    report = helm.lint(str(CHART), strict=True, kube_version="v" + K8S)
    errors = [m for m in report.get("messages", []) if m.get("severity", 0) >= 2] + report.get("errors", [])
    check(not errors, f"helm lint --strict: {errors}")
    print(f"ok: helm lint --strict ({len(report.get('messages', []))} messages, none a warning or error)")
    chart = helm.Chart.load(str(CHART))
    out = {}
    for name, v in variants.items():
        manifests = chart.render(v, name="tent", namespace="tent-system", is_install=True)
        out[name] = rendered_objects(manifests)
        print(f"ok: rendered {name}: {len(out[name])} objects")
    bad = copy.deepcopy(variants["default"])
    bad["profile"] = "yolo"
    try:
        chart.validate_schema(bad)
        check(False, "helm's schema validation accepted profile=yolo")
    except helm.HelmError as e:
        print(f"ok: helm refuses profile=yolo ({str(e).splitlines()[0][:80]})")
    return out


def k8s_checks(rendered):
    try:
        import kubernetes_validate as kv
    except ImportError:
        print("SKIP: kubernetes-validate missing: rendered objects not checked against Kubernetes' schemas")
        return
    for name, objs in rendered.items():
        for path, o in objs:
            try:
                kv.validate(o, K8S, strict=True)
            except Exception as e:  # ValidationError and schema lookups alike
                check(False, f"{name}: {path} {o['kind']}/{o['metadata']['name']}: {e}")
        print(f"ok: {name}: {len(objs)} objects valid for Kubernetes {K8S} (strict)")


def main():
    schema = json.loads((CHART / "values.schema.json").read_text())
    base = yaml.safe_load((CHART / "values.yaml").read_text())
    variants = values_variants(base)
    schema_checks(schema, variants)
    rendered = helm_checks(variants)
    if rendered:
        for name, objs in rendered.items():
            structure(name, objs, variants[name])
        print("ok: rendered structure (DaemonSet, RBAC, RuntimeClasses, pre-delete hook)")
        k8s_checks(rendered)
    for f in ["Chart.yaml", "templates/NOTES.txt"]:
        check((CHART / f).is_file(), f"missing {f}")
    if FAILURES:
        print(f"{len(FAILURES)} failure(s)")
        return 1
    print("chart checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
