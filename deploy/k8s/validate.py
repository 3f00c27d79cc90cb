#!/usr/bin/python3
"""Offline check of the Kubernetes manifests in deploy/k8s (the deploy tests run it; ctest).

For the base and every overlay: `kubectl kustomize` builds it (offline), then every object is
checked against the Kubernetes API's schema as the Python client (python3-kubernetes) carries it:
every field must be one the API knows, of the type it has, and required fields must be there.
`kubectl create/apply --dry-run=client` cannot do this here: both ask an API server (for the
OpenAPI document and for the kinds' REST mapping) and fail without one.

Then what the deployment depends on:
- sg-serve has Guaranteed QoS: every container's CPU and memory requests equal its limits, the
  CPU in whole CPUs (the static CPU manager policy gives exclusive cores only then);
- the probes: sg-serve /ping and the v2 health endpoints, the gateway /healthz and /readyz with
  Host "localhost" (the admin listener's allow-list), each on a port the container declares;
- every Deployment's selector matches its pod labels; every mounted volume, ConfigMap, Secret
  key, PVC and environment reference exists;
- the gateway's config (from the generated ConfigMap) passes `shadowgate check`, its pair log
  lies on the per-replica pair-log mount, which the sg-compare CronJob reads from the same
  claim; the pair log is bounded by size (max_total_bytes) and the claim holds every replica's
  bound; io_threads is the CPU limit (or 0, which follows the limit's quota); the termination
  grace covers preStop + shutdown_grace;
- sg-serve's config names model files that the image holds (deploy/images puts models/ at
  /models).

The kustomizations are written for kustomize v2.0.3, the one inside Debian 12's kubectl 1.20
(kubernetes-client), and build to the same objects with current ones (kubectl 1.32, kustomize
v5); docs/deploy.md says what that rules out. By default the builds use Debian's kubectl, the one
scripts/setup installs (debian_kubectl below); --kubectl names another, and --compare-with
another whose builds must give the same objects (`--compare-with /usr/bin/kubectl` with a
current kustomize).

Usage: validate.py [--kubectl KUBECTL] [--compare-with KUBECTL] --shadowgate SHADOWGATE
                   [--dir deploy/k8s]
Exit 0 when everything holds, 1 with one line per problem (a missing kubectl or Python client
too: scripts/setup installs them).
"""
import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile

try:
    import yaml
    import kubernetes.client as k8s
except ImportError as e:  # pragma: no cover
    print(f"{e.name} missing (scripts/setup installs python3-yaml and python3-kubernetes)")
    sys.exit(1)

KINDS = {
    ("v1", "ConfigMap"): "V1ConfigMap",
    ("v1", "Service"): "V1Service",
    ("v1", "Secret"): "V1Secret",
    ("v1", "Namespace"): "V1Namespace",
    ("v1", "PersistentVolumeClaim"): "V1PersistentVolumeClaim",
    ("apps/v1", "Deployment"): "V1Deployment",
    ("batch/v1", "CronJob"): "V1CronJob",
    ("batch/v1", "Job"): "V1Job",
    ("policy/v1", "PodDisruptionBudget"): "V1PodDisruptionBudget",
}
PRIMITIVES = {"str": str, "int": int, "bool": bool, "float": (int, float)}


def schema_problems(value, type_name, path):
    """Unknown fields and wrong types of `value` read as the client's `type_name`."""
    problems = []
    if type_name in ("object", "datetime", "date"):
        return problems  # IntOrString, free-form
    if type_name.startswith("list["):
        if not isinstance(value, list):
            return [f"{path}: expected a list, got {type(value).__name__}"]
        for i, item in enumerate(value):
            problems += schema_problems(item, type_name[5:-1], f"{path}[{i}]")
        return problems
    if type_name.startswith("dict("):
        if not isinstance(value, dict):
            return [f"{path}: expected a map, got {type(value).__name__}"]
        inner = type_name[5:-1].split(", ", 1)[1]
        for k, v in value.items():
            problems += schema_problems(v, inner, f"{path}.{k}")
        return problems
    if type_name in PRIMITIVES:
        ok = isinstance(value, PRIMITIVES[type_name]) and not (
            type_name != "bool" and isinstance(value, bool))
        return [] if ok else [f"{path}: expected {type_name}, got {value!r}"]
    model = getattr(k8s, type_name, None)
    if model is None:
        return [f"{path}: unknown type {type_name}"]
    if not isinstance(value, dict):
        return [f"{path}: expected an object ({type_name}), got {value!r}"]
    by_json = {j: a for a, j in model.attribute_map.items()}
    for key, v in value.items():
        if key not in by_json:
            problems.append(f"{path}.{key}: unknown field of {type_name}")
            continue
        problems += schema_problems(v, model.openapi_types[by_json[key]], f"{path}.{key}")
    return problems


def required_problems(obj, type_name, where):
    """The client's own constructors refuse missing required fields."""
    class Response:
        data = json.dumps(obj)
    try:
        k8s.ApiClient().deserialize(Response(), type_name)
    except (ValueError, TypeError) as e:
        return [f"{where}: {e}"]
    return []


def containers_of(obj):
    spec = obj.get("spec", {})
    if obj["kind"] == "CronJob":
        pod = spec["jobTemplate"]["spec"]["template"]["spec"]
    elif obj["kind"] in ("Deployment", "Job"):
        pod = spec["template"]["spec"]
    else:
        return None, []
    return pod, pod.get("containers", [])


def quantity_cpu(q):
    q = str(q)
    return float(q[:-1]) / 1000 if q.endswith("m") else float(q)


QUANTITY_UNITS = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40, "Pi": 1 << 50,
                  "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15}


def quantity_bytes(q):
    """A storage quantity ("100Gi", "500M", "1e9") in bytes."""
    q = str(q)
    for unit in sorted(QUANTITY_UNITS, key=len, reverse=True):
        if q.endswith(unit):
            return float(q[:-len(unit)]) * QUANTITY_UNITS[unit]
    return float(q)


def pair_log_disk_problems(where, obj, gw, claim, by_kind):
    """A month of mirroring must not fill the pair-log claim: each replica's log is bounded by
    size (capture.pair_log.max_total_bytes, plus one max_file_bytes file while it is compressed),
    and the claim holds every replica's bound."""
    log = gw["capture"]["pair_log"]
    total = log.get("max_total_bytes", 0)
    if total <= 0:
        return [f"{where}: capture.pair_log.max_total_bytes is not set: nothing bounds the pair "
                "log's disk but max_files (docs/gateway.md, Capture policy)"]
    name = claim.get("persistentVolumeClaim", {}).get("claimName")
    pvc = by_kind.get("PersistentVolumeClaim", {}).get(name)
    if pvc is None:
        return []  # a claim that does not exist is reported with the volumes
    storage = quantity_bytes(pvc["spec"]["resources"]["requests"]["storage"])
    replicas = obj["spec"].get("replicas", 1)
    need = replicas * (total + log.get("max_file_bytes", 256 << 20))
    if need > storage:
        return [f"{where}: {replicas} replicas x (max_total_bytes {total} + max_file_bytes) = "
                f"{need / (1 << 30):.2f} GiB of pair log do not fit the claim {name} "
                f"({pvc['spec']['resources']['requests']['storage']})"]
    return []


def check_build(name, objects, shadowgate, repo):
    problems = []
    by_kind = {}
    for obj in objects:
        by_kind.setdefault(obj["kind"], {})[obj["metadata"]["name"]] = obj
    for obj in objects:
        where = f"{name}: {obj['kind']}/{obj['metadata']['name']}"
        key = (obj.get("apiVersion"), obj.get("kind"))
        if key not in KINDS:
            problems.append(f"{where}: no schema for {key}")
            continue
        problems += [f"{where}: {p}" for p in schema_problems(obj, KINDS[key], "$")]
        problems += required_problems(obj, KINDS[key], where)

        pod, containers = containers_of(obj)
        if pod is None:
            continue
        if obj["kind"] == "Deployment":
            selector = obj["spec"]["selector"].get("matchLabels", {})
            labels = obj["spec"]["template"]["metadata"].get("labels", {})
            if any(labels.get(k) != v for k, v in selector.items()):
                problems.append(f"{where}: selector {selector} does not match pod labels {labels}")
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for v in volumes.values():
            if "configMap" in v and v["configMap"]["name"] not in by_kind.get("ConfigMap", {}):
                problems.append(f"{where}: volume {v['name']}: no ConfigMap {v['configMap']['name']}")
            if "persistentVolumeClaim" in v and v["persistentVolumeClaim"]["claimName"] not in \
                    by_kind.get("PersistentVolumeClaim", {}):
                problems.append(f"{where}: volume {v['name']}: no PVC")
        for c in containers:
            env = {e["name"] for e in c.get("env", [])}
            ports = {p.get("name") for p in c.get("ports", [])} | {
                p["containerPort"] for p in c.get("ports", [])}
            for m in c.get("volumeMounts", []):
                if m["name"] not in volumes:
                    problems.append(f"{where}: mount of unknown volume {m['name']}")
                for ref in re.findall(r"\$\((\w+)\)", m.get("subPathExpr", "")):
                    if ref not in env:
                        problems.append(f"{where}: subPathExpr names ${ref}, not in env")
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                if probe in c and c[probe].get("httpGet", {}).get("port") not in ports:
                    problems.append(f"{where}: {probe} on an undeclared port")
        problems += check_workload(where, obj, pod, containers, by_kind, shadowgate, repo)
    for required in (("Deployment", "sg-serve"), ("Deployment", "shadowgate"),
                     ("Service", "shadowgate"), ("Service", "sg-serve"), ("CronJob", "sg-compare")):
        if required[1] not in by_kind.get(required[0], {}):
            problems.append(f"{name}: no {required[0]}/{required[1]}")
    return problems


def probe_paths(c):
    return {p: c[p]["httpGet"]["path"] for p in ("startupProbe", "readinessProbe",
                                                 "livenessProbe") if p in c}


def config_of(pod, by_kind, container, mount_path, file):
    for m in container.get("volumeMounts", []):
        if m["mountPath"] == mount_path:
            volume = next(v for v in pod["volumes"] if v["name"] == m["name"])
            cm = by_kind["ConfigMap"][volume["configMap"]["name"]]
            return json.loads(cm["data"][file])
    return None


def check_workload(where, obj, pod, containers, by_kind, shadowgate, repo):
    problems = []
    name = obj["metadata"]["name"]
    if obj["kind"] == "Deployment" and name == "sg-serve":
        for c in containers:
            req, lim = c["resources"].get("requests", {}), c["resources"].get("limits", {})
            for r in ("cpu", "memory"):
                if r not in lim or str(req.get(r)) != str(lim[r]):
                    problems.append(f"{where}: {c['name']}: {r} requests {req.get(r)} != limits "
                                    f"{lim.get(r)}: not Guaranteed QoS")
            if "cpu" in lim and not quantity_cpu(lim["cpu"]).is_integer():
                problems.append(f"{where}: CPU limit {lim['cpu']} is not whole CPUs: no "
                                "exclusive cores under the static CPU manager policy")
            paths = set(probe_paths(c).values())
            for want in ("/ping", "/v2/health/live", "/v2/health/ready"):
                if want not in paths:
                    problems.append(f"{where}: no probe on {want}")
            serve = config_of(pod, by_kind, c, "/etc/sg-serve", "serve.json")
            if serve is None:
                problems.append(f"{where}: serve.json not mounted at /etc/sg-serve")
                continue
            for model, m in serve["models"].items():
                for key in ("path", "labels"):
                    if key in m and not (m[key].startswith("/models/") and os.path.exists(
                            os.path.join(repo, "models", m[key][len("/models/"):]))):
                        problems.append(f"{where}: model {model} {key} {m[key]} is not in the "
                                        "image (models/ goes to /models)")
            if not serve["inference_address"].startswith("0.0.0.0:"):
                problems.append(f"{where}: inference_address must listen on the pod IP")
    if obj["kind"] == "Deployment" and name == "shadowgate":
        c = containers[0]
        paths = probe_paths(c)
        if paths.get("readinessProbe") != "/readyz" or paths.get("livenessProbe") != "/healthz":
            problems.append(f"{where}: probes must be /readyz (readiness) and /healthz (liveness)")
        for p in ("readinessProbe", "livenessProbe"):
            headers = {h["name"].lower(): h["value"] for h in
                       c.get(p, {}).get("httpGet", {}).get("httpHeaders", [])}
            if headers.get("host") != "localhost":
                problems.append(f"{where}: {p} without Host: localhost gets 421 from the admin "
                                "listener")
        gw = config_of(pod, by_kind, c, "/etc/shadowgate", "gateway.json")
        if gw is None:
            return problems + [f"{where}: gateway.json not mounted at /etc/shadowgate"]
        cpu = quantity_cpu(c["resources"]["limits"]["cpu"])
        if gw.get("io_threads", 0) not in (0, math.ceil(cpu)):
            problems.append(f"{where}: io_threads {gw.get('io_threads', 0)} is neither the CPU "
                            f"limit {cpu} rounded up nor 0 (one per CPU of the limit's quota)")
        grace = pod.get("terminationGracePeriodSeconds", 30)
        pre = c.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
        pre_s = float(pre[-1]) if pre and pre[0].endswith("sleep") else 0
        shutdown = float(gw.get("shutdown_grace", "10s").rstrip("s"))
        if grace < pre_s + shutdown + 5:
            problems.append(f"{where}: terminationGracePeriodSeconds {grace} < preStop {pre_s} + "
                            f"shutdown_grace {shutdown} + 5 s to flush the pair log")
        log_dir = os.path.dirname(gw["capture"]["pair_log"]["path"])
        mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
        if log_dir not in mounts or "$(POD_NAME)" not in mounts[log_dir].get("subPathExpr", ""):
            problems.append(f"{where}: the pair log {gw['capture']['pair_log']['path']} is not on "
                            "a per-replica mount (subPathExpr $(POD_NAME))")
        else:
            claim = next(v for v in pod["volumes"] if v["name"] == mounts[log_dir]["name"])
            problems += pair_log_disk_problems(where, obj, gw, claim, by_kind)
            cron = by_kind.get("CronJob", {}).get("sg-compare")
            if cron:
                cpod, cc = containers_of(cron)
                claims = {v["name"]: v.get("persistentVolumeClaim", {}).get("claimName")
                          for v in cpod.get("volumes", [])}
                read = [m for m in cc[0].get("volumeMounts", []) if claims.get(m["name"]) ==
                        claim.get("persistentVolumeClaim", {}).get("claimName")]
                script = " ".join(cc[0].get("command", []) + cc[0].get("args", []))
                base = os.path.basename(gw["capture"]["pair_log"]["path"])
                if not read or f"{read[0]['mountPath']}/*/{base}*" not in script:
                    problems.append(f"{where}: the sg-compare CronJob does not read every "
                                    f"replica's {base}* from the pair-log claim")
        # The config itself, as the gateway reads it, with what only exists in the cluster made
        # up here: the token file, the upstreams' Service names (127.0.0.1 instead, same port),
        # the pair-log folder (the mount checked above).
        with tempfile.TemporaryDirectory() as tmp:
            for upstream in gw.get("upstreams", {}).values():
                upstream["endpoints"] = ["127.0.0.1:" + e.rsplit(":", 1)[1]
                                         for e in upstream.get("endpoints", [])]
            gw["capture"]["pair_log"]["path"] = os.path.join(tmp, "pairs.jsonl")
            if "token_file" in gw.get("admin", {}):
                token = os.path.join(tmp, "token")
                with open(token, "w") as f:
                    f.write("t" * 32 + "\n")
                os.chmod(token, 0o600)
                gw["admin"]["token_file"] = token
            path = os.path.join(tmp, "gateway.json")
            with open(path, "w") as f:
                json.dump(gw, f)
            try:
                run = subprocess.run([shadowgate, "check", "--config", path],
                                     capture_output=True, text=True)
            except OSError as e:
                return problems + [f"{where}: cannot run {shadowgate} check: {e}"]
            if run.returncode != 0:
                problems.append(f"{where}: shadowgate check: {run.stdout}{run.stderr}".strip())
    return problems


# Debian's kubectl: /usr/bin/kubectl when Debian's kubernetes-client owns it, else the same
# package unpacked by scripts/setup where another package (Google Cloud SDK's kubectl) owns
# /usr/bin/kubectl and dpkg would refuse to overwrite it.
UNPACKED_KUBECTL = "/opt/shadowgate/kubernetes-client/usr/bin/kubectl"


def debian_kubectl():
    """The kubectl of Debian's kubernetes-client, or None (with why) when neither place has it."""
    owner = subprocess.run(["dpkg-query", "-S", "/usr/bin/kubectl"], capture_output=True,
                           text=True).stdout.split(":")[0]
    if owner == "kubernetes-client":
        return "/usr/bin/kubectl", None
    if os.access(UNPACKED_KUBECTL, os.X_OK):
        return UNPACKED_KUBECTL, None
    return None, (f"Debian's kubectl not found: /usr/bin/kubectl belongs to "
                  f"{owner or 'no package'}, and {UNPACKED_KUBECTL} is missing (scripts/setup "
                  "installs kubernetes-client, or unpacks it there); --kubectl names another")


def kustomize(kubectl, path):
    """The objects `kubectl kustomize path` builds, and None; or None and its error."""
    run = subprocess.run([kubectl, "kustomize", path], capture_output=True, text=True)
    if run.returncode != 0:
        return None, run.stderr.strip()
    return [o for o in yaml.safe_load_all(run.stdout) if o], None


def comparable(objects):
    """Objects by (kind, name), less what two kustomize versions may write differently without
    meaning anything: the generated ConfigMaps' hash suffixes (each version hashes its own way)
    and empty maps (v2.0.3 writes `annotations: {}` on the ConfigMaps an overlay replaces)."""
    text = re.sub(r'"([a-z0-9-]+-config)-[a-z0-9]{10}"', r'"\1"', json.dumps(objects))

    def prune(value):
        if isinstance(value, dict):
            return {k: prune(v) for k, v in value.items() if v != {}}
        if isinstance(value, list):
            return [prune(v) for v in value]
        return value
    return {(o["kind"], o["metadata"]["name"]): prune(o) for o in json.loads(text)}


def differences(ours, theirs):
    """The (kind, name) of every object that one build has and the other lacks or writes
    otherwise."""
    a, b = comparable(ours), comparable(theirs)
    return sorted(f"{k[0]}/{k[1]}" for k in a.keys() | b.keys() if a.get(k) != b.get(k))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kubectl", help="the kubectl to build with (default: Debian's "
                    "kubernetes-client, kubectl 1.20 with kustomize v2.0.3)")
    ap.add_argument("--compare-with", metavar="KUBECTL", help="another kubectl (a current "
                    "kustomize: /usr/bin/kubectl 1.32 here) whose builds must give the same objects")
    ap.add_argument("--shadowgate", required=True)
    ap.add_argument("--dir", default=os.path.dirname(os.path.abspath(__file__)))
    args = ap.parse_args()
    repo = os.path.dirname(os.path.dirname(os.path.abspath(args.dir)))
    kubectl = args.kubectl
    if kubectl is None:
        kubectl, why = debian_kubectl()
        if kubectl is None:
            print(why)
            return 1
    try:
        version = subprocess.run([kubectl, "version", "--client"], capture_output=True,
                                 text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"{kubectl}: cannot run it ({e}): scripts/setup installs kubernetes-client")
        return 1
    print(f"kubectl: {kubectl}: {' '.join(version.split())}")
    builds = ["base"] + sorted("overlays/" + d for d in os.listdir(os.path.join(args.dir,
                                                                               "overlays")))
    problems = []
    for build in builds:
        objects, error = kustomize(kubectl, os.path.join(args.dir, build))
        if error is not None:
            problems.append(f"{build}: kubectl kustomize: {error}")
            continue
        found = check_build(build, objects, args.shadowgate, repo)
        if args.compare_with:
            theirs, error = kustomize(args.compare_with, os.path.join(args.dir, build))
            if error is not None:
                found.append(f"{build}: {args.compare_with} kustomize: {error}")
            elif differences(objects, theirs):
                found.append(f"{build}: {args.compare_with} builds other objects: "
                             f"{', '.join(differences(objects, theirs))}")
        problems += found
        print(f"{build}: {len(objects)} objects, {len(found)} problems")
    for p in problems:
        print(p)
    print(f"{len(builds) - len({p.split(':')[0] for p in problems})} passed, "
          f"{len({p.split(':')[0] for p in problems})} failed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
