"""``kubectl lock run``: the real binary (through kubectl's plugin dispatch) against the real API server,
in a namespace the shipped webhook judges (default settings, the chart's registration).

What a pipeline relies on: every object its manifests name is locked (those that do not exist yet by
name) for as long as the command runs, past many TTLs; the command's own stamped writes land; nothing
is held afterwards, however the command ends; a lost lock ends the command; a busy lock means it never
starts. TTLs are a few seconds, so renewal has to work for the tests to pass.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import lockcore, plugin_env
from tests.support.cluster import KubectlRunner
from tools.localcluster import BIN_DIR, LocalCluster

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("locked_ns")]

TTL = 3  # seconds; renewed every second
TXN = "t42"


def manifests(directory: Path, namespace: str) -> Path:
    """k8s/: a multi-document YAML file (an existing ConfigMap, a Secret not created yet) and a JSON List."""
    directory.mkdir()
    (directory / "app.yaml").write_text(f"""\
# the app's settings
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: {namespace}
data:
  mode: green
---
apiVersion: v1
kind: Secret
metadata:
  name: token
  namespace: {namespace}
stringData:
  token: abc
""")
    (directory / "more.json").write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "flags", "namespace": namespace},
         "data": {"beta": "on"}}]}))
    return directory


@pytest.fixture
def k8s(tmp_path: Path, locked_ns: str, kubectl: KubectlRunner) -> Path:
    kubectl("create", "configmap", "settings", "-n", locked_ns, "--from-literal=mode=blue")
    kubectl("create", "configmap", "flags", "-n", locked_ns)
    return manifests(tmp_path / "k8s", locked_ns)


OBJECTS = ("cm/settings", "secret/token", "cm/flags")


def run(cluster: LocalCluster, namespace: str, *args: str, user: str = "alice") -> subprocess.Popen[str]:
    """``kubectl lock run -n NS ARGS`` as ``user``, started (the caller waits)."""
    return subprocess.Popen([str(BIN_DIR / "kubectl"), "lock", "run", "-n", namespace, *args], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=plugin_env(cluster, user))


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[subprocess.Popen[str]]]:
    """Runs a test started; any still running at the end are killed (a failed test must not leak them)."""
    processes: list[subprocess.Popen[str]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()


def wait_for(path: Path, process: subprocess.Popen[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            raise AssertionError(f"run ended ({process.returncode}) first: {process.communicate()}")
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.1)


def held(cluster: LocalCluster, namespace: str, txn: str = TXN) -> list[str]:
    listed = lockcore(cluster, "list", "-n", namespace, "--txn", txn, "-o", "json")
    assert listed.returncode == 0, listed.stderr
    return sorted(item["resource"] for item in json.loads(listed.stdout)["items"])


def bob_writes(kubectl: KubectlRunner, namespace: str, obj: str) -> subprocess.CompletedProcess[str]:
    return kubectl("annotate", obj, "-n", namespace, "--overwrite", "bob=was-here", user="bob", check=False)


def test_run_holds_every_object_past_twice_the_ttl_and_lets_only_its_command_write(
        cluster: LocalCluster, locked_ns: str, kubectl: KubectlRunner, k8s: Path, tmp_path: Path,
        started: list[subprocess.Popen[str]]) -> None:
    go, ready = tmp_path / "go", tmp_path / "ready"
    # The command waits for the test's go-ahead, then applies through kubectl lock (txn from the environment).
    script = f'touch {ready}; while [ ! -e {go} ]; do sleep 0.1; done; exec kubectl lock apply -f {k8s}'
    process = run(cluster, locked_ns, "--txn", TXN, "--ttl", f"{TTL}s", "-f", str(k8s), "--", "sh", "-c", script)
    started.append(process)
    wait_for(ready, process)
    assert len(held(cluster, locked_ns)) == 3
    time.sleep(2 * TTL + 1)  # past twice the TTL: only renewal keeps the locks
    assert len(held(cluster, locked_ns)) == 3
    for obj in ("cm/settings", "cm/flags"):
        refused = bob_writes(kubectl, locked_ns, obj)
        assert refused.returncode != 0 and f"'{TXN}'" in refused.stderr, refused.stderr
    create = kubectl("create", "secret", "generic", "token", "-n", locked_ns, user="bob", check=False)
    # A create of a locked name is refused too (by the reservation policy or the webhook, naming the txn).
    assert create.returncode != 0 and "forbidden" in create.stderr and TXN in create.stderr, create.stderr
    go.touch()
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "configmap/settings configured" in out and "secret/token created" in out
    written = json.loads(kubectl("get", "cm/settings", "secret/token", "cm/flags", "-n", locked_ns,
                                 "-o", "json").stdout)
    assert [i["metadata"]["annotations"]["leasegate.io/transaction"] for i in written["items"]] == [TXN] * 3
    assert written["items"][0]["data"] == {"mode": "green"}
    assert held(cluster, locked_ns) == [], "released when the command ended"
    for obj in OBJECTS:
        passed = bob_writes(kubectl, locked_ns, obj)
        assert passed.returncode == 0, passed.stderr


def test_the_command_status_is_run_status_and_nothing_stays_held(
        cluster: LocalCluster, locked_ns: str, k8s: Path) -> None:
    process = run(cluster, locked_ns, "--txn", TXN, "--ttl", f"{TTL}s", "-f", str(k8s), "-o", "json",
                  "--", "sh", "-c", 'test "$LEASEGATE_TXN" = t42 && exit 7')
    out, err = process.communicate(timeout=60)
    assert process.returncode == 7, err
    report = json.loads(out)
    assert (report["exitCode"], report["lost"], report["txn"]) == (7, None, TXN)
    assert sorted(lock["resource"] for lock in report["locks"]) == sorted(
        f"{kind}/{name} -n {locked_ns}" for kind, name in (("configmap", "settings"), ("secret", "token"),
                                                           ("configmap", "flags")))
    assert held(cluster, locked_ns) == []


def test_sigterm_ends_the_command_within_seconds_and_releases(
        cluster: LocalCluster, locked_ns: str, k8s: Path, tmp_path: Path,
        started: list[subprocess.Popen[str]]) -> None:
    pid_file = tmp_path / "pid"
    process = run(cluster, locked_ns, "--txn", TXN, "--ttl", f"{TTL}s", "-f", str(k8s),
                  "--", "sh", "-c", f"echo $$ > {pid_file}.tmp && mv {pid_file}.tmp {pid_file} && exec sleep 300")
    started.append(process)
    wait_for(pid_file, process)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=10)
    assert process.returncode == 128 + signal.SIGTERM, err
    assert not Path(f"/proc/{pid_file.read_text().strip()}").exists(), "the command ended"
    assert held(cluster, locked_ns) == []


def test_a_force_release_mid_run_ends_the_command_and_run_exits_4(
        cluster: LocalCluster, locked_ns: str, k8s: Path, tmp_path: Path,
        started: list[subprocess.Popen[str]]) -> None:
    ready = tmp_path / "ready"
    process = run(cluster, locked_ns, "--txn", TXN, "--ttl", f"{TTL}s", "-f", str(k8s),
                  "--", "sh", "-c", f"touch {ready}; exec sleep 300")
    started.append(process)
    wait_for(ready, process)
    forced = lockcore(cluster, "force-release", "secret/token", "-n", locked_ns)
    assert forced.returncode == 0, forced.stderr
    _, err = process.communicate(timeout=3 * TTL)
    assert process.returncode == 4, err
    assert f"error: lost the lock on secret/token -n {locked_ns} (lease {locked_ns}/lg.secret.token), so the " \
           "command was terminated: " in err, err
    assert held(cluster, locked_ns) == []


def test_an_object_held_by_another_txn_means_exit_3_no_command_and_nothing_held(
        cluster: LocalCluster, locked_ns: str, k8s: Path, tmp_path: Path) -> None:
    taken = lockcore(cluster, "acquire", "cm/flags", "-n", locked_ns, "--txn", "t7", "--ttl", "1m", user="bob")
    assert taken.returncode == 0, taken.stderr
    ran = tmp_path / "ran"
    process = run(cluster, locked_ns, "--txn", TXN, "--ttl", f"{TTL}s", "-f", str(k8s),
                  "--", "sh", "-c", f"touch {ran}")
    _, err = process.communicate(timeout=60)
    assert process.returncode == 3 and "'t7'" in err, err
    assert not ran.exists()
    assert held(cluster, locked_ns) == []
    assert held(cluster, locked_ns, "t7") == [f"configmap/flags -n {locked_ns}"]


def test_a_command_that_cannot_start_is_the_shells_code_and_locks_nothing(
        cluster: LocalCluster, locked_ns: str, tmp_path: Path) -> None:
    plain = tmp_path / "not-executable"
    plain.write_text("#!/bin/sh\n")
    for command, code, says in [("no-such-command-anywhere", 127, "no-such-command-anywhere: command not found"),
                                (str(plain), 126, f"{plain}: permission denied"),
                                (str(tmp_path), 126, f"{tmp_path}: permission denied")]:
        process = run(cluster, locked_ns, "--txn", TXN, "--ttl", f"{TTL}s", "cm/settings", "--", command)
        _, err = process.communicate(timeout=60)
        assert (process.returncode, err) == (code, f"error: {says}\n")
    assert held(cluster, locked_ns) == []


def test_bad_manifests_are_one_error_line(cluster: LocalCluster, locked_ns: str, tmp_path: Path) -> None:
    nameless = tmp_path / "nameless.yaml"
    nameless.write_text("apiVersion: v1\nkind: Pod\nmetadata:\n  generateName: p-\n")
    for args, code, says in [(["-f", str(tmp_path / "missing.yaml")], 1, "does not exist"),
                             (["-f", str(nameless)], 2, "metadata.name is missing"),
                             (["nosuchkind/x"], 2, 'the server doesn\'t have a resource type "nosuchkind"')]:
        process = run(cluster, locked_ns, "--txn", TXN, "--ttl", "5s", *args, "--", "true")
        _, err = process.communicate(timeout=60)
        assert process.returncode == code and says in err and "Traceback" not in err, err
        assert err.count("error:") == 1 and err.startswith("error: "), err


def test_everything_it_needs_is_the_environment_kubectl_lock_gives(cluster: LocalCluster) -> None:
    # The txn reaches a nested kubectl lock command through LEASEGATE_TXN, nothing else.
    assert os.environ.get("LEASEGATE_TXN") is None
    env = plugin_env(cluster, "alice", LEASEGATE_TXN="t-env")
    stamped = subprocess.run([str(BIN_DIR / "kubectl"), "lock", "stamp"], input="apiVersion: v1\nkind: ConfigMap\n"
                             "metadata:\n  name: x\n", capture_output=True, text=True, env=env, timeout=60)
    assert stamped.returncode == 0, stamped.stderr
    assert '"leasegate.io/transaction": "t-env"' in stamped.stdout
