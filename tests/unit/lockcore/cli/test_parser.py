"""lockcore.cli.parser: argument parsing and the usage exit codes, no cluster needed."""

from __future__ import annotations

import argparse

import pytest

from lockcore.cli import kubectl_main, main
from lockcore.cli.parser import build_parser, parse, parse_duration


@pytest.mark.parametrize(("text", "seconds"), [("10m", 600), ("1h30m", 5400), ("45", 45), ("0.5", 0.5),
                                               ("250ms", 0.25), ("1.5s", 1.5), ("2h", 7200)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "10x", "m", "1h-5m", "ten"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_duration(text)


def test_acquire_arguments() -> None:
    args = build_parser("lockcore").parse_args(
        ["acquire", "deployment/web", "-n", "shop", "--txn", "t42", "--ttl", "10m", "--wait", "30s",
         "-o", "json", "--context", "alice", "--lock-namespace", "locks", "--profile", "janus"])
    assert (args.command, args.targets, args.namespace, args.txn, args.ttl, args.wait) == (
        "acquire", ["deployment/web"], "shop", "t42", 600.0, 30.0)
    assert (args.output, args.context, args.lock_namespace, args.profile) == ("json", "alice", "locks", "janus")


def test_acquire_and_release_take_several_objects() -> None:
    parser = build_parser("kubectl lock", plugin=True)
    for command in (["acquire", "--ttl", "1m"], ["release"]):
        args = parser.parse_args([*command, "deployment/web", "cm/web-config", "--txn", "t42"])
        assert args.targets == ["deployment/web", "cm/web-config"]
    with pytest.raises(SystemExit):
        parser.parse_args(["acquire", "--txn", "t42", "--ttl", "1m"])  # no object at all


def test_plugin_only_commands() -> None:
    plugin = build_parser("kubectl lock", plugin=True)
    assert plugin.parse_args(["apply", "-f", "x.yaml", "--txn", "t"]).filename == "x.yaml"
    assert plugin.parse_args(["edit", "cm/x", "--txn", "t"]).target == "cm/x"
    with pytest.raises(SystemExit):
        build_parser("lockcore").parse_args(["apply", "-f", "x.yaml", "--txn", "t"])


@pytest.mark.parametrize("argv", [
    ["acquire", "deployment/web", "--txn", "t"],               # --ttl missing
    ["acquire", "deployment/web", "--txn", "bad txn", "--ttl", "1m"],
    ["list", "--txn", "-bad-"],
    ["frobnicate"],
    [],
])
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert kubectl_main(argv) == 2


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "exit codes" in capsys.readouterr().out


def test_run_takes_files_objects_and_the_command_after_the_double_dash() -> None:
    args = parse(build_parser("kubectl lock", plugin=True),
                 ["run", "--txn", "t42", "--ttl", "5s", "-f", "k8s/", "-f", "-", "cm/extra", "--wait", "1m",
                  "--", "kubectl", "lock", "apply", "-f", "k8s/", "--txn", "ignored-by-run"])
    assert (args.command, args.filename, args.targets, args.ttl, args.wait) == (
        "run", ["k8s/", "-"], ["cm/extra"], 5.0, 60.0)
    assert args.exec == ["kubectl", "lock", "apply", "-f", "k8s/", "--txn", "ignored-by-run"]
    assert parse(build_parser("lockcore"), ["run", "--txn", "t", "--ttl", "1s", "cm/x"]).exec == []


def test_other_commands_parse_as_before_even_with_a_double_dash() -> None:
    args = parse(build_parser("lockcore"), ["release", "--txn", "t42", "--", "cm/x"])
    assert (args.command, args.targets) == ("release", ["cm/x"])


@pytest.mark.parametrize("argv", [["apply", "-f", "x.yaml"], ["edit", "cm/x"], ["delete", "cm/x"], ["stamp"],
                                  ["run", "--ttl", "1m", "cm/x"]])
def test_the_txn_comes_from_the_environment_when_not_given(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEASEGATE_TXN", "t-env")
    assert build_parser("kubectl lock", plugin=True).parse_args(argv).txn == "t-env"
    assert build_parser("kubectl lock", plugin=True).parse_args([*argv, "--txn", "t-flag"]).txn == "t-flag"
    monkeypatch.delenv("LEASEGATE_TXN")
    with pytest.raises(SystemExit):
        build_parser("kubectl lock", plugin=True).parse_args(argv)


def test_lock_commands_never_take_the_txn_from_the_environment(monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    # Releasing or renewing is a decision about a lock, not a write inside a transaction.
    monkeypatch.setenv("LEASEGATE_TXN", "t-env")
    assert main(["release", "cm/x"]) == 2
    assert "--txn" in capsys.readouterr().err


def test_a_bad_txn_in_the_environment_is_a_usage_error(monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("LEASEGATE_TXN", "bad txn")
    assert kubectl_main(["stamp"]) == 2
    assert capsys.readouterr().err.startswith("error: argument --txn: ")


def test_run_without_a_command_or_objects_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--txn", "t", "--ttl", "1m", "cm/x"]) == 2
    assert capsys.readouterr().err == "error: run needs a command after --, e.g. -- kubectl lock apply -f k8s/\n"
@pytest.mark.parametrize("since", ["7", "1w", "soon", "-1h", ""])
def test_audit_bad_since_is_one_line_usage_error(since: str, capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # Refused before any cluster is needed (no kubeconfig here at all).
    monkeypatch.setenv("KUBECONFIG", "/nonexistent/kubeconfig")
    assert kubectl_main(["audit", f"--since={since}"]) == 2
    err = capsys.readouterr().err
    assert err == f"error: invalid --since {since!r} (e.g. 7d, 1h, 30m)\n"


def test_audit_arguments() -> None:
    args = build_parser("kubectl lock", plugin=True).parse_args(
        ["audit", "cm/web-config", "-n", "shop", "--since", "7d", "--txn", "t42", "--user", "bob", "-o", "json"])
    assert (args.target, args.namespace, args.since, args.txn, args.user, args.output) == (
        "cm/web-config", "shop", "7d", "t42", "bob", "json")
