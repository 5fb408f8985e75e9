"""CLI argument parsing and exit codes that need no cluster."""

from __future__ import annotations

import argparse

import pytest

from lockcore.cli import build_parser, kubectl_main, main, parse_duration


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
