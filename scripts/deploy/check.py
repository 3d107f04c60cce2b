"""Checks deploy/kubernetes.yaml and docker-compose.yaml against authd itself.

Run by scripts/check-deploy inside a network namespace of its own. Static checks first (Pod
Security "restricted" fields, real settings, probe ports and paths), then for each file: authd
runs with that file's environment, database and SMTP replaced by a PostgreSQL database made for
the run (over the unix socket, which crosses the namespace) and an SMTP catcher here, as the
file's uid, with no new privileges, no capabilities and a read-only root; the probes run as
Kubernetes and compose would run them; SIGTERM must stop it cleanly within the grace period.
"""

import argparse
import os
import re
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import grpc
import yaml
from aiosmtpd.controller import Controller
from grpc_health.v1 import health_pb2, health_pb2_grpc

PG_SOCKET_DIR = "/var/run/postgresql"
SMTP_PORT = 1025  # inside the namespace of its own: nothing else listens there
# authd's own shutdown: AUTHD_SHUTDOWN_GRACE (5 s default) and the drain of in-flight calls (20 s).
SHUTDOWN_NEEDS = 5 + 20
RESTRICTED_ADD_OK = {"NET_BIND_SERVICE"}

problems = []


def problem(where, message):
    problems.append(f"{where}: {message}")
    print(f"check-deploy: FAIL {where}: {message}", flush=True)


def say(message):
    print(f"check-deploy: {message}", flush=True)


# ---- what authd accepts --------------------------------------------------------------------


def settings_of(binary):
    """Environment variables `authd serve` reads, from its --help."""
    text = subprocess.run([binary, "serve", "--help"], check=True, capture_output=True,
                          text=True, env={}).stdout
    names = set(re.findall(r"\[env: (AUTHD_[A-Z0-9_]+)[=\]]", text))
    if not names:
        sys.exit("check-deploy: `authd serve --help` lists no AUTHD_ variables")
    return names | {"DATABASE_URL"}


def port_of(addr):
    return int(addr.rsplit(":", 1)[1])


def dockerfile_user(root):
    users = re.findall(r"^USER\s+(\S+)", (root / "Dockerfile").read_text(), re.M)
    return users[-1] if users else None


# ---- Kubernetes ----------------------------------------------------------------------------


def k8s_env(docs, container):
    """The container's environment: envFrom Secrets, then env (which wins), as the kubelet."""
    secrets = {d["metadata"]["name"]: d for d in docs if d.get("kind") == "Secret"}
    env = {}
    for source in container.get("envFrom", []):
        name = source.get("secretRef", {}).get("name")
        if name not in secrets:
            problem("kubernetes", f"envFrom names Secret {name!r}, which the file does not hold")
            continue
        env.update(secrets[name].get("stringData", {}))
        if secrets[name].get("data"):
            problem("kubernetes", "give the example Secret as stringData, so it reads as text")
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
        else:
            problem("kubernetes", f"env {item['name']}: only literal values are checked")
    return env


def check_kubernetes(docs, settings, uid):
    where = "kubernetes"
    deployments = [d for d in docs if d.get("kind") == "Deployment"]
    if len(deployments) != 1:
        problem(where, f"expected one Deployment, found {len(deployments)}")
        return None
    pod = deployments[0]["spec"]["template"]["spec"]
    containers = pod.get("containers", [])
    if len(containers) != 1:
        problem(where, "expected one container")
        return None
    container = containers[0]
    pod_sc, sc = pod.get("securityContext", {}), container.get("securityContext", {})

    def effective(field):
        return sc.get(field, pod_sc.get(field))

    # Pod Security Standard "restricted" (v1.30 and later), field by field.
    if effective("runAsNonRoot") is not True:
        problem(where, "runAsNonRoot must be true")
    if str(effective("runAsUser")) != uid.split(":")[0]:
        problem(where, f"runAsUser {effective('runAsUser')} is not the image's USER {uid}")
    if effective("runAsUser") == 0:
        problem(where, "runAsUser 0")
    if sc.get("allowPrivilegeEscalation") is not False:
        problem(where, "allowPrivilegeEscalation must be false")
    capabilities = sc.get("capabilities", {})
    if "ALL" not in capabilities.get("drop", []):
        problem(where, "capabilities must drop ALL")
    if set(capabilities.get("add", [])) - RESTRICTED_ADD_OK:
        problem(where, f"capabilities add {capabilities['add']}")
    if (effective("seccompProfile") or {}).get("type") not in ("RuntimeDefault", "Localhost"):
        problem(where, "seccompProfile must be RuntimeDefault")
    if sc.get("readOnlyRootFilesystem") is not True:
        problem(where, "readOnlyRootFilesystem must be true")
    if sc.get("privileged"):
        problem(where, "privileged")
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(field):
            problem(where, f"{field} is set")
    for volume in pod.get("volumes", []):
        if "hostPath" in volume:
            problem(where, f"volume {volume['name']} is a hostPath")

    env = k8s_env(docs, container)
    check_env(where, env, settings)
    if not env.get("AUTHD_DATABASE_URL", "").startswith("postgres"):
        problem(where, "a read-only root needs PostgreSQL: AUTHD_DATABASE_URL must be postgres://")

    resources = container.get("resources", {})
    for kind in ("requests", "limits"):
        if "memory" not in resources.get(kind, {}):
            problem(where, f"resources.{kind}.memory is not set")

    grace = pod.get("terminationGracePeriodSeconds", 30)
    if grace <= SHUTDOWN_NEEDS:
        problem(where, f"terminationGracePeriodSeconds {grace} must exceed {SHUTDOWN_NEEDS} s")

    # Probes name the ports the addresses listen on, and paths authd serves.
    ports = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
    grpc_port = port_of(env.get("AUTHD_GRPC_ADDR", "127.0.0.1:50051"))
    http_port = port_of(env.get("AUTHD_HTTP_ADDR", "127.0.0.1:8080"))
    if set(ports.values()) != {grpc_port, http_port}:
        problem(where, f"containerPorts {sorted(ports.values())} are not the listen ports {grpc_port}, {http_port}")
    probes = {}
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        probe = container.get(kind)
        if not probe:
            problem(where, f"no {kind}")
            continue
        if "grpc" in probe:
            if probe["grpc"]["port"] != grpc_port:
                problem(where, f"{kind} grpc port {probe['grpc']['port']} is not {grpc_port}")
            probes[kind] = ("grpc", grpc_port, probe["grpc"].get("service", ""))
        elif "httpGet" in probe:
            port = probe["httpGet"]["port"]
            port = ports.get(port, port)
            path = probe["httpGet"].get("path", "/")
            if port != http_port:
                problem(where, f"{kind} httpGet port {port} is not the HTTP port {http_port}")
            if path not in ("/healthz", "/readyz"):
                problem(where, f"{kind} path {path} is neither /healthz nor /readyz")
            probes[kind] = ("http", port, path)
        else:
            problem(where, f"{kind}: only grpc and httpGet probes are checked")
    if probes.get("livenessProbe", ("", 0, ""))[2] == "/readyz":
        problem(where, "liveness on /readyz restarts pods when the database is down")

    for service in (d for d in docs if d.get("kind") == "Service"):
        for port in service["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            if ports.get(target, target) not in (grpc_port, http_port):
                problem(where, f"Service port {port['port']} targets {target}, which authd does not serve")
    user = f"{effective('runAsUser')}:{effective('runAsGroup') or effective('runAsUser')}"
    return {"env": env, "probes": probes, "grace": grace, "user": user,
            "args": container.get("args", ["serve"])}


# ---- compose -------------------------------------------------------------------------------


def check_compose(doc, settings, entrypoint):
    where = "compose"
    services = doc.get("services", {})
    authd = services.get("authd")
    if not authd:
        problem(where, "no authd service")
        return None
    env = {k: str(v) for k, v in (authd.get("environment") or {}).items()}
    check_env(where, env, settings)
    if authd.get("build") is None:
        problem(where, "authd is not built from the Dockerfile")
    smtp = env.get("AUTHD_SMTP_URL", "")
    host = re.match(r"smtps?://(?:[^@/]*@)?([^:/]+)", smtp)
    if not host or host.group(1) not in services:
        problem(where, f"AUTHD_SMTP_URL {smtp!r} is not one of the compose services")
    database = re.match(r"postgres(?:ql)?://(?:[^@/]*@)?([^:/]+)", env.get("AUTHD_DATABASE_URL", ""))
    if not database or database.group(1) not in services:
        problem(where, "AUTHD_DATABASE_URL is not the compose PostgreSQL")
    for name, dependency in (authd.get("depends_on") or {}).items():
        if dependency.get("condition") != "service_healthy":
            problem(where, f"depends_on {name} without condition service_healthy")
        if not services.get(name, {}).get("healthcheck"):
            problem(where, f"{name} has no healthcheck for depends_on to wait on")
    for name in ("postgres", "mailpit"):
        if name not in (authd.get("depends_on") or {}):
            problem(where, f"authd does not wait for {name}")
    test = (authd.get("healthcheck") or {}).get("test", [])
    if not test or test[0] != "CMD" or test[1] != entrypoint:
        problem(where, f"the healthcheck should run {entrypoint} (exec form), not {test}")
    published = {int(str(p).rsplit(":", 1)[-1]) for p in authd.get("ports", [])}
    listening = {port_of(env.get("AUTHD_GRPC_ADDR", "127.0.0.1:50051")),
                 port_of(env.get("AUTHD_HTTP_ADDR", "127.0.0.1:8080"))}
    if published != listening:
        problem(where, f"published container ports {sorted(published)} are not the listen ports {sorted(listening)}")
    for addr in ("AUTHD_GRPC_ADDR", "AUTHD_HTTP_ADDR"):
        if not env.get(addr, "").startswith(("0.0.0.0:", "[::]:")):
            problem(where, f"{addr} must listen on all addresses to be reachable from the host")
    grace = str(authd.get("stop_grace_period", "10s"))
    seconds = int(grace.rstrip("s")) if re.fullmatch(r"\d+s", grace) else 0
    if seconds <= SHUTDOWN_NEEDS:
        problem(where, f"stop_grace_period {grace} must exceed {SHUTDOWN_NEEDS} s")
    if authd.get("read_only") is not True:
        problem(where, "authd should run read_only (it writes nothing with PostgreSQL)")
    return {"env": env, "healthcheck": test[1:], "grace": seconds, "user": None,
            "args": authd.get("command", ["serve"])}


def check_env(where, env, settings):
    for name in env:
        if (name.startswith("AUTHD_") or name == "DATABASE_URL") and name not in settings:
            problem(where, f"{name} is not a setting of `authd serve`")
    if "AUTHD_MAIL_TO_LOG" in env:
        problem(where, "AUTHD_MAIL_TO_LOG is for development: give an SMTP URL")
    if "AUTHD_SMTP_URL" not in env:
        problem(where, "no AUTHD_SMTP_URL: serve refuses to start without it")


# ---- running authd -------------------------------------------------------------------------


class Mailbox:
    """An SMTP catcher on loopback; remembers the recipients."""

    def __init__(self):
        self.received = []
        self.controller = Controller(self, hostname="127.0.0.1", port=SMTP_PORT)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        self.received.append(envelope.rcpt_tos)
        return "250 OK"


def psql(sql):
    subprocess.run(["psql", f"host={PG_SOCKET_DIR} user=postgres dbname=postgres", "-Atqc", sql],
                   check=True, capture_output=True)


def grpc_probe(port, service=""):
    """What the kubelet's grpc probe does: Health/Check, success only on SERVING."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=1)
        except grpc.RpcError as err:
            return f"{err.code().name}"
    return health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)


def http_probe(port, path):
    """What the kubelet's httpGet probe does: 200-399 is success."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=1) as answer:
            return answer.status
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return None


def as_the_pod(binary, args, uid, env):
    """argv that runs binary as uid with no new privileges, no capabilities, read-only root."""
    user, _, group = uid.partition(":")
    drop = (f"mount -o remount,bind,ro / && exec setpriv --reuid={user} --regid={group or user} "
            "--clear-groups --no-new-privs --bounding-set=-all --inh-caps=-all -- \"$@\"")
    return ["unshare", "--mount", "--propagation", "private", "--",
            "sh", "-c", drop, "sh", binary, *args]


def run(where, binary, uid, spec, mailbox):
    database = f"authd_deploy_check_{uuid.uuid4().hex[:12]}"
    psql(f"CREATE DATABASE {database}")
    log = Path(f"/tmp/{database}.log")
    try:
        env = dict(spec["env"])
        env["AUTHD_DATABASE_URL"] = f"postgres://postgres@localhost/{database}?host={PG_SOCKET_DIR}"
        env["AUTHD_SMTP_URL"] = f"smtp://127.0.0.1:{SMTP_PORT}"
        # The container runtime's PATH; unshare, mount and setpriv need it before the exec.
        env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        grpc_port = port_of(env.get("AUTHD_GRPC_ADDR", "127.0.0.1:50051"))
        http_port = port_of(env.get("AUTHD_HTTP_ADDR", "127.0.0.1:8080"))
        with log.open("w") as out:
            server = subprocess.Popen(as_the_pod(binary, spec["args"], uid, env), env=env,
                                      stdout=out, stderr=subprocess.STDOUT)
        try:
            probe_all(where, binary, uid, spec, env, server, log, grpc_port, http_port)
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()
    finally:
        psql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        log.unlink(missing_ok=True)


def probe_all(where, binary, uid, spec, env, server, log, grpc_port, http_port):
    deadline = time.monotonic() + 60
    while grpc_probe(grpc_port) != "SERVING":
        if server.poll() is not None or time.monotonic() > deadline:
            print(log.read_text(), file=sys.stderr)
            problem(where, "authd did not become SERVING with this environment")
            return
        time.sleep(0.3)
    status = Path(f"/proc/{server.pid}/status").read_text()
    running_as = re.search(r"^Uid:\s+(\d+)", status, re.M).group(1)
    if running_as != uid.split(":")[0]:
        problem(where, f"authd runs as uid {running_as}, not {uid}")
    say(f"{where}: authd serving as uid {running_as} on a read-only root")
    for kind, (protocol, port, target) in spec.get("probes", {}).items():
        if protocol == "grpc":
            answer = grpc_probe(port, target)
            ok = answer == "SERVING"
        else:
            answer = http_probe(port, target)
            ok = answer is not None and 200 <= answer < 400
        shown = target or '""'
        say(f"{where}: {kind} {protocol} :{port} {shown} -> {answer}")
        if not ok:
            problem(where, f"{kind} fails: {answer}")
    if spec.get("healthcheck"):
        command = spec["healthcheck"]
        check = subprocess.run(as_the_pod(binary, command[1:], uid, env), env=env,
                               capture_output=True, text=True, timeout=30)
        say(f"{where}: healthcheck {' '.join(command)} -> exit {check.returncode} {check.stderr.strip()}")
        if check.returncode != 0:
            problem(where, f"the healthcheck command fails: {check.stderr.strip()}")
    began = time.monotonic()
    server.terminate()
    readiness_after_term = grpc_probe(grpc_port)
    try:
        status = server.wait(timeout=spec["grace"])
    except subprocess.TimeoutExpired:
        problem(where, f"authd still runs {spec['grace']} s after SIGTERM (the grace period)")
        return
    say(f"{where}: SIGTERM: readiness right after it {readiness_after_term}; exit {status} after {time.monotonic() - began:.1f} s")
    if status != 0:
        print(log.read_text(), file=sys.stderr)
        problem(where, f"exit status {status} after SIGTERM")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True)
    parser.add_argument("--root", required=True, type=Path)
    options = parser.parse_args()
    root, binary = options.root, os.path.abspath(options.bin)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)

    settings = settings_of(binary)
    uid = dockerfile_user(root) or "0"
    k8s_docs = [d for d in yaml.safe_load_all((root / "deploy/kubernetes.yaml").read_text()) if d]
    compose_doc = yaml.safe_load((root / "docker-compose.yaml").read_text())
    entrypoint = re.search(r'^ENTRYPOINT\s+\["([^"]+)"', (root / "Dockerfile").read_text(), re.M)
    k8s = check_kubernetes(k8s_docs, settings, uid)
    compose = check_compose(compose_doc, settings, entrypoint.group(1) if entrypoint else "")
    say(f"static checks done: {len(problems)} problem(s)")

    mailbox = Mailbox()
    mailbox.controller.start()
    try:
        if k8s:
            run("kubernetes", binary, k8s["user"], k8s, mailbox)
        if compose:  # compose runs the image's USER
            run("compose", binary, uid, compose, mailbox)
    finally:
        mailbox.controller.stop()

    if problems:
        sys.exit(f"check-deploy: {len(problems)} problem(s):\n  " + "\n  ".join(problems))
    say("deploy/kubernetes.yaml and docker-compose.yaml pass")


if __name__ == "__main__":
    main()
