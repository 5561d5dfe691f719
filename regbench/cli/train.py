"""``regbench train``: train a learned method on a dataset's train/val splits."""
from __future__ import annotations

import click

from .common import (data_set_option, dataset_option, dataset_sets, device_option, log, method_option, parse_sets,
                     progress, results_option, root_option, seed_option, set_option)


@click.command()
@method_option(required=False)
@dataset_option(default=None)
@root_option
@click.option("--recipe", default=None, help="methods/recipes/<name>.yaml: method, dataset and training settings")
@set_option
@data_set_option
@click.option("--train-set", "train_sets", multiple=True, metavar="KEY=VALUE",
              help="training setting override (epochs, batch_size, lr, …; repeatable)")
@click.option("--out", default=None, help="checkpoint folder (default <results>/train/<method>-<dataset>)")
@results_option
@device_option
@seed_option(default=None, help="training seed (default: the recipe's, else 0)")
@click.option("--no-resume", is_flag=True, help="start over instead of resuming from last.pt")
@click.option("--no-mlflow", is_flag=True, help="do not log curves to MLflow (curves.csv is still written)")
def train(method, dataset, root, recipe, sets, data_sets, train_sets, out, results, device, seed, no_resume,
          no_mlflow) -> None:
    """Train a learned method; resumes after an interruption; the best weights are evaluable as-is."""
    from ..train import train as run_train

    train_over = parse_sets(train_sets) | ({"seed": seed} if seed is not None else {})
    with progress(f"train {recipe or method}", unit="step") as update:
        best = run_train(method=method, dataset=dataset, sets=parse_sets(sets), train_sets=train_over,
                         dataset_sets=dataset_sets(data_sets, root), out_dir=out, results_dir=results, device=device,
                         resume=not no_resume, recipe=recipe, log_mlflow=not no_mlflow, progress=update)
    log(f"best weights: {best}  (evaluate with --set weights={best})")
