#!/usr/bin/python3
"""Checks deploy/k8s/*.yaml against the real greeksd (issue 21).

What: parses every YAML document of deploy/k8s/*.yaml and checks the greeksd
Deployment against the binary named by $GREEKSD: its args use only flags that
`greeksd --help` lists; the probes' ports are the ones --listen and
--metrics-listen bind; readiness is /readyz/pricing; a gRPC probe is on the gRPC port
and only on a plaintext listener (the kubelet's gRPC probe cannot speak TLS);
every volume mounted exists; every file the args, the environment and the
config name (config file, tokens, TLS pair, PGPASSFILE) lies under a mount;
secret volumes are 0400 or 0600 and no fsGroup makes them group-readable; the
ConfigMap's greeksd.yaml passes `greeksd --check-config` (its /etc/greeksd
paths rewritten into a temporary directory holding a fresh TLS pair and token
files, mode 0600); the headless Service and the PDB select the pods; the grace
period outlasts preStop + drain_timeout_ms. How: plain asserts, one failure
message per broken rule, exit 1 on any. Why against the binary: the manifests
must follow greeksd's flags and schema as they are, not as written here.

Usage: GREEKSD=build/api/greeksd test_k8s_manifests.py SOURCE_DIR
"""
import glob
import os
import re
import subprocess
import sys
import tempfile
import urllib.parse

import yaml

ETC = "/etc/greeksd/"
failures = []


def check(ok, message):
    if not ok:
        failures.append(message)


def load_documents(source_dir):
    files = sorted(glob.glob(os.path.join(source_dir, "deploy", "k8s", "*.yaml")))
    check(files, "no deploy/k8s/*.yaml")
    docs = []
    for path in files:
        with open(path) as f:
            docs += [d for d in yaml.safe_load_all(f) if d is not None]
    return docs


def of_kind(docs, kind):
    return [d for d in docs if d.get("kind") == kind]


def known_flags(greeksd):
    out = subprocess.run([greeksd, "--help"], capture_output=True, text=True, timeout=30)
    flags = set(re.findall(r"^\s+(--[a-z0-9-]+)", out.stdout + out.stderr, re.M))
    check(len(flags) > 20, f"could not read greeksd's flags from --help: {sorted(flags)}")
    return flags


def parse_args(args):
    """['--a', 'x', '--b=y'] -> {'--a': 'x', '--b': 'y'} (flags without a value map to None)."""
    values, i = {}, 0
    while i < len(args):
        a = args[i]
        check(a.startswith("--"), f"argument '{a}' is not a flag")
        if "=" in a:
            k, v = a.split("=", 1)
            values[k] = v
        elif i + 1 < len(args) and not args[i + 1].startswith("--"):
            values[a] = args[i + 1]
            i += 1
        else:
            values[a] = None
        i += 1
    return values


def port_of(address):
    return int(address.rsplit(":", 1)[1])


def probe_port(probe):
    for kind in ("httpGet", "grpc", "tcpSocket"):
        if kind in probe:
            return kind, probe[kind]["port"]
    return None, None


def under_a_mount(path, mounts):
    return any(path == m or path.startswith(m.rstrip("/") + "/") for m in mounts)


def config_paths(config):
    paths = [(config.get("tls") or {}).get(k) for k in ("cert", "key")]
    paths += [t["file"] for t in config.get("tokens") or []]
    paths += [config.get(k) for k in ("token_file", "port_file", "metrics_port_file")]
    store = config.get("book_store", "")
    if store.startswith("sqlite:"):
        paths.append(store[len("sqlite:"):])
    return [p for p in paths if p]


def check_config_validates(greeksd, text):
    """Runs --check-config on the ConfigMap's file with /etc/greeksd/ moved into a temp dir."""
    with tempfile.TemporaryDirectory() as tmp:
        root = tmp + "/"
        config = yaml.safe_load(text)
        tls = config.get("tls") or {}
        for path in config_paths(config):
            local = path.replace(ETC, root)
            os.makedirs(os.path.dirname(local), exist_ok=True)
        if tls.get("cert"):
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                            "-keyout", tls["key"].replace(ETC, root), "-out", tls["cert"].replace(ETC, root),
                            "-subj", "/CN=greeksd"], check=True, capture_output=True, timeout=60)
        for i, t in enumerate(config.get("tokens") or []):
            with open(t["file"].replace(ETC, root), "w") as f:
                f.write(f"token-{i}-0123456789abcdef\n")
        for dirpath, _, names in os.walk(tmp):
            for name in names:
                os.chmod(os.path.join(dirpath, name), 0o600)
        local_config = os.path.join(tmp, "greeksd.yaml")
        with open(local_config, "w") as f:
            f.write(text.replace(ETC, root))
        run = subprocess.run([greeksd, "--check-config", "--config", local_config], capture_output=True,
                             text=True, timeout=60)
        check(run.returncode == 0, f"greeksd --check-config rejects the ConfigMap's greeksd.yaml:\n{run.stderr}")
    return config


def check_deployment(greeksd, deployment, configmaps):
    pod = deployment["spec"]["template"]["spec"]
    containers = [c for c in pod["containers"] if "greeksd" in " ".join(c.get("command", []) + [c["name"]])]
    check(len(containers) == 1, "the Deployment needs exactly one greeksd container")
    container = containers[0]
    flags = known_flags(greeksd)
    args = parse_args(container.get("args", []))
    for flag in args:
        check(flag in flags, f"args use '{flag}', which greeksd --help does not list")

    # The config file: from the ConfigMap, validated by greeksd itself.
    config_file = args.get("--config")
    check(config_file, "args name no --config file")
    config = {}
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
    for path, name in mounts.items():
        check(name in volumes, f"volumeMount {path} uses volume '{name}', which is not in the pod")
    for m in container.get("volumeMounts", []):
        volume = volumes.get(m["name"], {})
        if "configMap" in volume and config_file and under_a_mount(config_file, [m["mountPath"]]):
            check("subPath" not in m, "the config is mounted with subPath: greeksd would never see an update")
            key = os.path.relpath(config_file, m["mountPath"])
            cm = [c for c in configmaps if c["metadata"]["name"] == volume["configMap"]["name"]]
            check(cm and key in cm[0].get("data", {}), f"ConfigMap {volume['configMap']['name']} has no key {key}")
            if cm and key in cm[0].get("data", {}):
                config = check_config_validates(greeksd, cm[0]["data"][key])
    check(config, f"--config {config_file} is not a file of a mounted ConfigMap")

    # Ports: the probes must hit what greeksd binds.
    grpc_port = port_of(args.get("--listen") or config.get("listen", "127.0.0.1:50051"))
    metrics = args.get("--metrics-listen") or config.get("metrics_listen", "127.0.0.1:9464")
    check(metrics != "off", "--metrics-listen off: no /healthz and /readyz for the probes")
    metrics_port = port_of(metrics) if metrics != "off" else None
    listen_host = (args.get("--listen") or config.get("listen", "127.0.0.1:50051")).rsplit(":", 1)[0]
    check(listen_host in ("0.0.0.0", "[::]", "::"), f"--listen host {listen_host}: the kubelet cannot reach it")
    declared = {p["containerPort"] for p in container.get("ports", [])}
    check({grpc_port, metrics_port} <= declared, f"containerPorts {declared} miss {grpc_port} or {metrics_port}")
    tls = bool(args.get("--tls-cert") or (config.get("tls") or {}).get("cert"))
    readiness = container.get("readinessProbe")
    check(readiness and readiness.get("httpGet", {}).get("path") == "/readyz/pricing",
          "the readiness probe is not /readyz/pricing (a shared store's outage must not empty the Service)")
    for name in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = container.get(name)
        if not probe:
            continue
        kind, port = probe_port(probe)
        if kind == "grpc":
            check(port == grpc_port, f"{name}: gRPC probe on port {port}, greeksd's gRPC port is {grpc_port}")
            check(not tls, f"{name}: the kubelet's gRPC probe cannot speak TLS, and the listener is TLS")
            check(probe["grpc"].get("service", "") == "", f"{name}: gRPC probe service should be \"\"")
        elif kind == "httpGet":
            check(port == metrics_port, f"{name}: HTTP probe on port {port}, --metrics-listen is {metrics_port}")
            check(probe["httpGet"]["path"] in ("/healthz", "/readyz", "/readyz/pricing"),
                  f"{name}: path {probe['httpGet']['path']}")
        else:
            check(False, f"{name}: neither an HTTP nor a gRPC probe")
    check(container.get("livenessProbe"), "no liveness probe")

    # Files: every one greeksd or libpq opens lies under a mount.
    files = [config_file] + [args.get(f) for f in ("--tls-cert", "--tls-key", "--token-file")]
    files += [e["value"] for e in container.get("env", []) if e["name"] == "PGPASSFILE" and "value" in e]
    files += config_paths(config)
    for path in filter(None, files):
        check(under_a_mount(path, mounts), f"'{path}' lies under no volumeMount")
    store = config.get("book_store", "")
    if store.startswith(("postgresql://", "postgres://")):
        check(urllib.parse.urlsplit(store).password is None,
              "book_store has a password in the ConfigMap: use PGPASSFILE from a Secret")

    # Secrets: private files, or greeksd refuses to start.
    for name, volume in volumes.items():
        if "secret" in volume:
            mode = volume["secret"].get("defaultMode", 0o644)
            check(mode in (0o400, 0o600), f"secret volume '{name}' has defaultMode {mode:04o}, not 0400/0600")
            for item in volume["secret"].get("items", []):
                check(item.get("mode", mode) in (0o400, 0o600), f"secret volume '{name}' item mode")
    check("fsGroup" not in (pod.get("securityContext") or {}),
          "fsGroup makes the kubelet add group read to secret files: greeksd refuses them")

    # Grace: preStop sleep + drain must end before the SIGKILL.
    drain_ms = int(args.get("--drain-timeout-ms") or config.get("drain_timeout_ms", 10000))
    pre_stop = ((container.get("lifecycle") or {}).get("preStop") or {}).get("sleep", {}).get("seconds", 0)
    grace = pod.get("terminationGracePeriodSeconds", 30)
    check(grace * 1000 > drain_ms + pre_stop * 1000,
          f"terminationGracePeriodSeconds {grace} s <= preStop {pre_stop} s + drain_timeout_ms {drain_ms}")
    return grpc_port


def selects(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def main():
    source_dir = sys.argv[1]
    greeksd = os.environ.get("GREEKSD")
    if not greeksd or not os.access(greeksd, os.X_OK):
        print("GREEKSD must name the greeksd binary")
        return 1
    docs = load_documents(source_dir)
    deployments = [d for d in of_kind(docs, "Deployment") if d["metadata"]["name"] == "greeksd"]
    check(len(deployments) == 1, "no Deployment named greeksd")
    if deployments:
        deployment = deployments[0]
        check(deployment["spec"].get("replicas", 1) >= 3, "fewer than 3 replicas")
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        check(selects(deployment["spec"]["selector"]["matchLabels"], labels), "the Deployment selects not its pods")
        grpc_port = check_deployment(greeksd, deployment, of_kind(docs, "ConfigMap"))
        headless = [s for s in of_kind(docs, "Service") if s["spec"].get("clusterIP") == "None"]
        check(len(headless) == 1, "no headless Service (clusterIP: None)")
        for service in headless:
            check(selects(service["spec"].get("selector"), labels), "the headless Service does not select the pods")
            ports = {p.get("targetPort", p["port"]) for p in service["spec"]["ports"]}
            check(grpc_port in ports, f"the headless Service does not carry the gRPC port {grpc_port}")
        pdbs = of_kind(docs, "PodDisruptionBudget")
        check(len(pdbs) == 1, "no PodDisruptionBudget")
        for pdb in pdbs:
            check(selects(pdb["spec"]["selector"].get("matchLabels"), labels), "the PDB does not select the pods")
            check(pdb["spec"].get("minAvailable") == 2, "the PDB's minAvailable is not 2")
    for message in failures:
        print("FAIL:", message)
    print(f"{len(docs)} documents checked, {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
