"""Grids of evaluations and the leaderboards built from them.

``cells``: the grid file, its cells and a cell's stored result (what a worker runs);
``executors``: where cells run (local subprocesses, SLURM through submitit, Ray);
``run``: running a grid and logging it to MLflow; ``leaderboard``: tables and plots from stored results.
"""
from .cells import Cell, Grid, Task, expand, grid_names, grid_path, leaderboards_dir, load_grid, read_result, run_cell
from .run import GridReport, executor_options, grid_results, run_grid, summary_rows

__all__ = ["Cell", "Grid", "GridReport", "Task", "executor_options", "expand", "grid_names", "grid_path",
           "grid_results", "leaderboards_dir", "load_grid", "read_result", "run_cell", "run_grid", "summary_rows"]
