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


def documented_commands() -> list[tuple[str, str]]:
    """Every ``regbench …`` command quoted (in backticks or code blocks) in the README, docs, cards and grids."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    files = [root / "README.md", *sorted((root / "docs").glob("*.md")), *sorted((root / "methods").rglob("*.yaml")),
             *sorted((root / "datasets").glob("*.yaml")), *sorted((root / "leaderboards").glob("*.yaml"))]
    found = []
    for path in files:
        text = path.read_text()
        for m in re.finditer(r"(?:^|[`\s#(])((?:OMP_NUM_THREADS=\d+ )?regbench (?:--?[a-z]|[a-z])[^`\n|;&)]*)", text):
            cmd = m.group(1).split("#")[0].strip()
            if re.match(r"(OMP_NUM_THREADS=\d+ )?regbench (-v |--verbose )?(--\w|[a-z]+\b)", cmd):
                found.append((path.name, cmd))
    return found


def test_texts_name_only_commands_and_options_that_exist():

    checked = 0
    for where, cmd in documented_commands():
        words = [w for w in cmd.replace("…", "").split() if not w.startswith("OMP_NUM_THREADS")][1:]
        node: click.Command = main
        while isinstance(node, click.Group) and words and not words[0].startswith("-"):
            if words[0] not in node.commands:
                if node is main:  # prose such as "regbench reports …" is not a command
                    break
                raise AssertionError(f"{where}: `{cmd}` names no command {words[0]!r}")
            node, words = node.commands[words[0]], words[1:]
        else:
            known = {o for p in node.params for o in (*p.opts, *p.secondary_opts)} | {"--help", "--version",
                                                                                      "-v", "--verbose"}
            for w in words:
                if w.startswith("-") and not w[1:2].isdigit():
                    assert w.split("=")[0] in known, f"{where}: `{cmd}` uses {w!r}, which `{node.name}` does not take"
            checked += 1
    assert checked > 20


def test_mlflow_info_logs_only_with_verbose(tmp_path):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_LOGGING_LEVEL", "MLFLOW_TRACKING_URI")}
    outputs = {}
    for flags in ([], ["--verbose"]):
        out = subprocess.run([sys.executable, "-m", "regbench", *flags, "run", "-m", "identity", "--limit", "1",
                              "--results", str(tmp_path / f"r{len(flags)}")], capture_output=True, text=True, env=env,
                             timeout=300)
        assert out.returncode == 0, out.stderr
        outputs[bool(flags)] = out.stdout + out.stderr
    assert "Creating initial MLflow database tables" not in outputs[False]
    assert "Creating initial MLflow database tables" in outputs[True]


def test_data_verify_json(tmp_path):
    from fakedata import make_folder

    fake = make_folder(tmp_path / "f")
    out = CliRunner().invoke(main, ["data", "verify", "-d", "folder", "--root", str(fake.root), "--json"])
    report = json.loads(out.stdout)
    assert report["dataset"] == "folder" and out.exit_code == (0 if report["ok"] else 1)
    assert {s["split"]: s["found"] for s in report["splits"]}["test"] == 5
