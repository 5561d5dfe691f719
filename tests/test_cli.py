"""The command line's grammar: one spelling per concept, help on every option, --json, --version, user errors."""
from __future__ import annotations

import json

import click
import pytest
from click.testing import CliRunner

from regbench import __version__
from regbench.cli import main

#: concept -> the option's declarations wherever a verb takes it
GRAMMAR = {
    "method": {"--method", "-m"},
    "dataset": {"--dataset", "-d"},
    "root": {"--root"},
    "split": {"--split"},
    "protocol": {"--protocol"},
    "limit": {"--limit"},
    "results": {"--results"},
    "device": {"--device"},
    "seed": {"--seed"},
    "sets": {"--set"},
    "data_sets": {"--data-set"},
    "as_json": {"--json"},
}
#: spellings that must not come back
RETIRED = {"--pairs", "--sample", "--dataset-set", "--data", "--protocol-name", "--n", "--samples"}


def commands(group: click.Group = main, prefix: str = "") -> dict[str, click.Command]:
    out = {}
    for name, cmd in group.commands.items():
        full = f"{prefix}{name}"
        out[full] = cmd
        if isinstance(cmd, click.Group):
            out |= commands(cmd, f"{full} ")
    return out


@pytest.mark.parametrize("name", sorted(commands()))
def test_every_verb_spells_each_concept_the_same_way_and_documents_it(name):
    cmd = commands()[name]
    for param in cmd.params:
        if not isinstance(param, click.Option):
            continue
        decls = set(param.opts) | set(param.secondary_opts)
        assert not decls & RETIRED, f"{name}: {decls & RETIRED} is retired; use the common spelling"
        assert param.help, f"{name} {param.opts[0]} has no help text"
        for concept, spelling in GRAMMAR.items():
            if decls & spelling:
                assert decls == spelling and param.name in (concept, concept + "s"), \
                    f"{name}: {param.opts} should be {sorted(spelling)} (dest {concept})"


def test_version():
    out = CliRunner().invoke(main, ["--version"])
    assert out.exit_code == 0 and __version__ in out.output


def test_json_outputs_parse(tiny, results, tmp_path):
    runner = CliRunner()
    for args in (["list", "methods"], ["list", "protocols"],
                 ["run", "-m", "identity", "-d", tiny, "--limit", "3", "--results", str(results), "--no-mlflow"],
                 ["bench", "harness", "-d", tiny, "--limit", "3"]):
        out = runner.invoke(main, [*args, "--json"])
        assert out.exit_code == 0, out.output
        json.loads(out.stdout)  # stdout is one JSON document; logs went to stderr
    listed = json.loads(runner.invoke(main, ["list", "methods", "--json"]).stdout)
    assert {"name": "soma-no-fge", "base": "soma"}.items() <= next(r for r in listed if r["name"] == "soma-no-fge").items()


def test_limit_takes_a_positive_number_or_all(tiny, results):
    bad = CliRunner().invoke(main, ["run", "-m", "identity", "-d", tiny, "--limit", "-3", "--results", str(results)])
    assert bad.exit_code == 2 and "not a positive number of pairs" in bad.output
    zero = CliRunner().invoke(main, ["run", "-m", "identity", "-d", tiny, "--limit", "0", "--results", str(results)])
    assert zero.exit_code == 2
    every = CliRunner().invoke(main, ["run", "-m", "identity", "-d", tiny, "--limit", "all", "--json",
                                      "--results", str(results), "--no-mlflow"])
    assert every.exit_code == 0 and json.loads(every.stdout)["n_pairs"] == 6


@pytest.mark.parametrize("args, message", [
    (["leaderboard", "no-such-board"], "unknown grid 'no-such-board'"),
    (["run", "-m", "identity", "--device", "tpu"], "unknown device 'tpu'"),
    (["run", "-m", "nosuch"], "unknown method 'nosuch'"),
    (["run", "-m", "identity", "--protocol", "strict"], "unknown protocol 'strict'"),
    (["train", "--recipe", "no-such-recipe"], "no training recipe"),
    (["config", "-m", "cfog", "--set", "nokey=1"], "unknown config key 'nokey'"),
])
def test_user_errors_are_one_line_without_traceback(args, message, results):
    out = CliRunner().invoke(main, [*args, "--results", str(results)] if args[0] in ("run",) else args)
    assert out.exit_code == 1, out.output
    assert message in out.output and "Traceback" not in out.output
    assert out.output.startswith("Error: ")
