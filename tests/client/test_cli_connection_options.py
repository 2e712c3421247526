"""The connection flags work before or after every subcommand, at every depth (`digits ab create ...
--target HOST:PORT`). The subcommands are found by walking the parser, so a new one is covered
without touching this file."""

from __future__ import annotations

import argparse

import pytest

from digits.cli import build_parser

CONNECTION = {"target": "example.org:7000", "timeout": 3.5, "token_file": "token.txt",
              "tls_ca": "ca.pem", "tls_cert": "client.pem", "tls_key": "client.key"}
FLAGS = ["--target", "example.org:7000", "--timeout", "3.5", "--token-file", "token.txt",
         "--tls-ca", "ca.pem", "--tls-cert", "client.pem", "--tls-key", "client.key"]


def leaves() -> dict[str, tuple[list[str], argparse.ArgumentParser]]:
    """{"ab create": (["ab", "create"], parser)} for every subcommand without subcommands of its own."""
    found = {}

    def walk(parser: argparse.ArgumentParser, path: list[str]) -> None:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs and path:
            found[" ".join(path)] = (path, parser)
        for action in subs:
            for name, child in action.choices.items():
                walk(child, [*path, name])

    walk(build_parser(), [])
    return found


LEAVES = leaves()


def required_arguments(parser: argparse.ArgumentParser) -> list[str]:
    """Values for a leaf's required positionals and options: "1" (a number, a name and a path at once)
    or the first allowed choice."""
    argv: list[str] = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction) or not (action.required or not action.option_strings):
            continue
        if action.nargs in ("?", "*"):
            continue
        value = str(next(iter(action.choices))) if action.choices else "1"
        values = [value] * (action.nargs if isinstance(action.nargs, int) else 1)
        argv += [action.option_strings[0], *values] if action.option_strings else values
    return argv


def test_every_command_is_walked() -> None:
    assert {"classify", "eval", "models", "reload", "feedback", "bench", "ab create", "ab update", "ab list",
            "ab delete", "ab report", "ab run"} <= set(LEAVES)


@pytest.mark.parametrize("command", sorted(LEAVES))
def test_connection_flags_parse_after_the_subcommand(command: str) -> None:
    path, leaf = LEAVES[command]
    args = build_parser().parse_args([*path, *required_arguments(leaf), *FLAGS])
    assert {key: getattr(args, key, None) for key in CONNECTION} == CONNECTION


@pytest.mark.parametrize("command", sorted(LEAVES))
def test_connection_flags_before_survive_and_after_wins(command: str) -> None:
    path, leaf = LEAVES[command]
    before = ["--target", "before:1", "--token-file", "kept.txt"]
    args = build_parser().parse_args([*before, *path, *required_arguments(leaf), "--target", "after:2"])
    assert (args.target, args.token_file) == ("after:2", "kept.txt")  # the subcommand's copy sets no defaults
    args = build_parser().parse_args([*before, *path, *required_arguments(leaf)])
    assert (args.target, args.token_file) == ("before:1", "kept.txt")
    assert not hasattr(args, "timeout")  # defaults come later, from connection(): env, then DEFAULT_TIMEOUT


def test_between_the_levels_of_a_nested_command() -> None:
    args = build_parser().parse_args(["ab", "--target", "mid:3", "create", "x", "--arm", "lstm", "--arm", "gru"])
    assert args.target == "mid:3" and args.name == "x"
