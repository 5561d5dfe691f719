"""``regbench list`` (registered names) and ``regbench config`` (a resolved config and its hash)."""
from __future__ import annotations

import click

from .common import data_set_option, emit_json, json_option, log, parse_sets, set_option


@click.command("list")
@click.argument("kind", type=click.Choice(["methods", "datasets", "protocols"]))
@json_option
def list_cmd(kind: str, as_json: bool) -> None:
    """List the registered methods, datasets or protocols."""
    from ..registry import catalog

    rows = catalog(kind)
    if as_json:
        return emit_json(rows)
    for row in rows:
        text = (f"[variant of {row['base']}] " if row.get("base") else "") + row["description"]
        log(f"{row['name']:24s} {text if len(text) <= 100 else text[:99] + '…'}")


@click.command("config")
@click.option("--method", "-m", default=None, help="method or variant name")
@click.option("--dataset", "-d", default=None, help="dataset name")
@set_option
@data_set_option
@json_option
def config_cmd(method: str | None, dataset: str | None, sets: tuple[str, ...], data_sets: tuple[str, ...],
               as_json: bool) -> None:
    """Print the resolved config (defaults < card < --set / --data-set) of a method and/or dataset, and its hash."""
    import yaml

    from ..registry import resolved_config

    if not method and not dataset:
        raise click.UsageError("give --method and/or --dataset")
    if sets and not method or data_sets and not dataset:
        raise click.UsageError("--set overrides a method's config (needs --method), --data-set a dataset's (needs --dataset)")
    docs = [resolved_config("method", method, parse_sets(sets))] if method else []
    docs += [resolved_config("dataset", dataset, parse_sets(data_sets))] if dataset else []
    if as_json:
        return emit_json(docs if len(docs) > 1 else docs[0])
    for doc in docs:
        log(yaml.safe_dump(doc["config"], sort_keys=False).rstrip())
        log(f"# {doc['kind']} {doc['name']} -> {doc['target']}; config hash {doc['hash'][:12]}")
