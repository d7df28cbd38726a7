"""``python -m train.finetune``: Lightning LoRA fine-tuning of the Mobile VLA on real and/or sim episodes.

The run is described by a RoboVLMs config JSON (like the real run's; the default is the tiny
CPU preset of ``assets/configs/mobile_vla_tiny_sim.json``), with command-line overrides. It
writes what the real runs write: ``epoch_epoch=XX-val_loss=val_loss=0.XXX.ckpt`` (top 3 by
val_loss) and ``last.ckpt`` in the run folder, ``version_N/metrics.csv`` + ``hparams.yaml`` from
the CSV logger, and the resolved config as ``config.json`` beside them.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from policies.vla.config import VLAConfig
    from train.dataset import EpisodeWindowDataset

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO_ROOT / "assets" / "configs" / "mobile_vla_tiny_sim.json"
CHECKPOINT_FILENAME = "epoch_{epoch:02d}-val_loss={val_loss:.3f}"
"""The real run's ModelCheckpoint template; Lightning inserts the metric names, giving
``epoch_epoch=06-val_loss=val_loss=0.067.ckpt`` as in the real run folders."""

logger = logging.getLogger("train.finetune")


class UsageError(Exception):
    """Bad command-line input: printed as one line, exit code 2."""


@dataclass
class DataSpec:
    """One episode folder and how its frames are stored: ``"file"`` (default) follows each file's
    recorded order (the ``channel_order`` attribute; the team's files without it are BGR), ``"bgr"``
    or ``"rgb"`` declare it for the whole folder."""

    path: Path
    channel_order: str = "file"

    @classmethod
    def parse(cls, text: str) -> DataSpec:
        path, _, order = (
            text.rpartition(":") if text.endswith((":bgr", ":rgb", ":file")) else (text, "", "file")
        )
        return cls(Path(path), order or "file")


def seen_channel_order(episodes: list[Any]) -> str:
    """The colour order the model is shown, recorded in the run's recipe: ``"rgb"`` (true colours)
    when every episode is read in its stored order, ``"bgr"`` (red and blue swapped, as the fork's
    loader did with real files) when every one is read in the other order.

    Raises:
        UsageError: some episodes would reach the model swapped and others not (name a folder's order).
    """
    from train.episodes import read_episode

    swapped = {
        info.path for info in episodes if read_episode(info.path, False).channel_order != info.channel_order
    }
    if not swapped:
        return "rgb"
    if len(swapped) == len(episodes):
        return "bgr"
    example = sorted(swapped)[0]
    raise UsageError(
        f"{len(swapped)} of {len(episodes)} episodes (e.g. {example}) would reach the model with red and blue "
        "swapped and the others not; drop the :rgb/:bgr suffix so each file's recorded colour order is followed"
    )


@dataclass
class FinetuneConfig:
    """Everything a run needs beyond the model config (which lives in the RoboVLMs JSON)."""

    configs: dict[str, Any]
    data: list[DataSpec]
    out: Path = Path("runs")
    run_dir: Path | None = None
    num_workers: int = 0
    limit_train_batches: float | int | None = None
    save_top_k: int = 3
    """Checkpoints kept by val_loss (the real runs: 3; -1 keeps every epoch)."""
    init_seed: int | None = None
    progress: bool = True
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.data:
            raise UsageError("no training data: pass --data DIR (episode folders in the real HDF5 format)")
        for spec in self.data:
            if not spec.path.exists():
                raise UsageError(
                    f"--data {spec.path}: no such folder; generate sim episodes with "
                    "`python -m train.generate --episodes N --out DIR`"
                )
            if spec.channel_order not in ("rgb", "bgr", "file"):
                raise UsageError(
                    f"--data {spec.path}: channel order {spec.channel_order!r} must be rgb, bgr or file"
                )
        if self.num_workers < 0:
            raise UsageError(f"--num-workers {self.num_workers} must be >= 0")
        if self.save_top_k < -1 or self.save_top_k == 0:
            raise UsageError(f"--save-top-k {self.save_top_k} must be -1 (every epoch) or >= 1")

    @property
    def dataset(self) -> dict[str, Any]:
        return self.configs.get("train_dataset", {})

    def resolved_run_dir(self) -> Path:
        if self.run_dir is not None:
            return self.run_dir
        t = self.configs
        return (
            self.out / t["exp_name"] / "kosmos" / t["task_name"] / time.strftime("%Y-%m-%d") / t["exp_name"]
        )


def load_config(path: Path) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"--config {path}: no such file (the default is {DEFAULT_CONFIG})") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"--config {path}: not valid JSON ({exc})") from None


OPTION_KEYS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("max_epochs", ("trainer", "max_epochs")),
    ("lr", ("learning_rate",)),
    ("batch_size", ("batch_size",)),
    ("accumulate", ("trainer", "accumulate_grad_batches")),
    ("precision", ("trainer", "precision")),
    ("precision", ("train_setup", "precision")),
    ("seed", ("seed",)),
    ("exp_name", ("exp_name",)),
    ("split", ("train_dataset", "split")),
    ("windows", ("train_dataset", "windows")),
    ("mirror", ("train_dataset", "mirror")),
)
"""Command-line option -> the RoboVLMs key (a path of sections) it overrides when given."""


def apply_overrides(configs: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """The config with the command line's overrides written into the RoboVLMs keys."""
    cfg = copy.deepcopy(configs)
    for section in ("trainer", "mvla_sim", "train_dataset", "val_dataset"):
        cfg.setdefault(section, {})
    for option, path in OPTION_KEYS:
        value = getattr(args, option)
        if value is not None:
            target = cfg
            for key in path[:-1]:
                target = target.setdefault(key, {})
            target[path[-1]] = value
    if args.backbone is not None:
        cfg["mvla_sim"]["backbone"] = args.backbone
        cfg["mvla_sim"].pop("backbone_config", None)
        for section in ("vlm", "tokenizer"):
            cfg.setdefault(section, {})["pretrained_model_name_or_path"] = args.backbone
        cfg["model_path"] = args.backbone
    if args.data:
        dirs = [str(d) for d in args.data]
        cfg["train_dataset"]["data_dir"] = dirs
        cfg["val_dataset"]["data_dir"] = dirs
    return cfg


def _resolve_precision(configs: dict[str, Any], notes: list[str]) -> str:
    import torch

    precision = str(configs.get("trainer", {}).get("precision", "32-true"))
    if "16" in precision and not precision.startswith("bf16") and not torch.cuda.is_available():
        notes.append(f"precision {precision} needs CUDA; this run uses 32-true on the CPU")
        precision = "32-true"
    configs["trainer"]["precision"] = precision
    return precision


def run(config: FinetuneConfig) -> dict[str, Any]:
    """Train; returns the checkpoint callback's results (best_k_models, best, last, run_dir)."""
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint

    from policies.vla.config import ConfigError
    from policies.vla.robovlms_config import parse as parse_robovlms
    from train.lightning_module import MobileVLAModule

    cfg = config.configs
    try:
        vla = parse_robovlms(cfg)
    except ConfigError as exc:
        raise UsageError(f"config: {exc}") from None
    precision = _resolve_precision(cfg, config.notes)
    for note in config.notes:
        logger.warning(note)
    run_dir = config.resolved_run_dir()
    run_dir.mkdir(parents=True, exist_ok=True)
    L.seed_everything(vla.seed, workers=True)
    train_set, val_set = _datasets(config, vla)
    _record_run(config, vla, train_set, val_set, run_dir)
    train_loader, val_loader = _loaders(config, vla, train_set, val_set)

    module = MobileVLAModule(cfg, init_seed=config.init_seed if config.init_seed is not None else vla.seed)
    if cfg.get("mvla_sim", {}).get("standardize_features"):
        batches = [b for b, _ in zip(train_loader, range(8), strict=False)]
        stats = module.standardize_features(batches)
        config.notes.append(f"final text LayerNorm standardized on {stats['frames']} training frames")
    checkpoint = ModelCheckpoint(
        dirpath=run_dir,
        monitor="val_loss",
        mode="min",
        save_top_k=config.save_top_k,
        save_last=True,
        every_n_epochs=1,
        filename=CHECKPOINT_FILENAME,
    )
    trainer = _trainer(config, vla, precision, run_dir, checkpoint)
    started = time.perf_counter()
    trainer.fit(module, train_loader, val_loader)
    best = {str(Path(p).name): float(v) for p, v in checkpoint.best_k_models.items()}
    return {
        "run_dir": str(run_dir),
        "best_k_models": dict(sorted(best.items(), key=lambda kv: kv[1])),
        "best_model_path": checkpoint.best_model_path,
        "last_model_path": checkpoint.last_model_path,
        "train_windows": len(train_set),
        "val_windows": len(val_set),
        "seconds": round(time.perf_counter() - started, 1),
        "notes": config.notes,
    }


def _datasets(config: FinetuneConfig, vla: VLAConfig) -> tuple[EpisodeWindowDataset, EpisodeWindowDataset]:
    """The training and validation windows of the run's episode folders (``UsageError`` if unusable)."""
    from train.dataset import EpisodeSource, train_val_datasets

    ds = config.dataset
    sources = [
        EpisodeSource(s.path, ds.get("episode_pattern", "episode_*.h5"), s.channel_order) for s in config.data
    ]
    try:
        train_set, val_set = train_val_datasets(
            sources,
            mirror=ds.get("mirror", "none"),
            split=ds.get("split", "sorted"),
            train_fraction=vla.training.train_split,
            seed=vla.seed,
            window_size=vla.window_size,
            fwd_pred_next_n=vla.fwd_pred_next_n,
            windows=ds.get("windows", "real"),
            image_size=vla.image_size,
        )
    except ValueError as exc:
        raise UsageError(f"data: {exc}") from None
    if len(val_set) == 0:
        raise UsageError("the validation split is empty: add episodes or lower train_split")
    return train_set, val_set


def _record_run(
    config: FinetuneConfig,
    vla: VLAConfig,
    train_set: EpisodeWindowDataset,
    val_set: EpisodeWindowDataset,
    run_dir: Path,
) -> None:
    """Write the resolved config, with the recipe, the data sources and the split, as ``config.json``."""
    from mvla_sim.files import atomic_write_json
    from train.lightning_module import DEFAULT_RECIPE

    cfg = config.configs
    if vla.recipe is None:
        # What this run shows the model, recorded for the as_trained profile (the fork's newest recipe).
        cfg["mvla_sim"]["recipe"] = DEFAULT_RECIPE.to_dict()
        config.notes.append(f"no recipe in the config: training with {DEFAULT_RECIPE.to_dict()}")
    # the colour order the model sees comes from the data, not the config
    cfg["mvla_sim"]["recipe"]["channel_order"] = seen_channel_order([*train_set.episodes, *val_set.episodes])
    cfg["mvla_sim"]["data_sources"] = [
        {"path": str(s.path), "channel_order": s.channel_order} for s in config.data
    ]
    cfg["mvla_sim"]["episodes"] = {"train": len(train_set.episodes), "val": len(val_set.episodes)}
    atomic_write_json(run_dir / "config.json", cfg)


def _loaders(
    config: FinetuneConfig, vla: VLAConfig, train_set: EpisodeWindowDataset, val_set: EpisodeWindowDataset
) -> tuple[Any, Any]:
    from torch.utils.data import DataLoader

    from train.dataset import collate as collate_fn

    loader_kw = {
        "batch_size": vla.training.batch_size,
        "num_workers": config.num_workers,
        "collate_fn": collate_fn,
        "persistent_workers": config.num_workers > 0,
    }
    train_loader = DataLoader(train_set, shuffle=True, drop_last=False, **loader_kw)
    return train_loader, DataLoader(val_set, shuffle=False, **loader_kw)


def _trainer(config: FinetuneConfig, vla: VLAConfig, precision: str, run_dir: Path, checkpoint: Any) -> Any:
    """The Lightning trainer of the run: the config's optimisation settings, a CSV logger."""
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger

    trainer_cfg = config.configs.get("trainer", {})
    return L.Trainer(
        default_root_dir=run_dir,
        accelerator="auto",
        devices=1,
        precision=precision,
        max_epochs=vla.training.max_epochs,
        gradient_clip_val=vla.training.gradient_clip_val or None,
        accumulate_grad_batches=vla.training.accumulate_grad_batches,
        log_every_n_steps=int(trainer_cfg.get("log_every_n_steps", 5)),
        check_val_every_n_epoch=int(trainer_cfg.get("check_val_every_n_epoch", 1)),
        logger=[CSVLogger(save_dir=run_dir, name="")],
        callbacks=[checkpoint],
        enable_progress_bar=config.progress,
        enable_model_summary=config.progress,
        limit_train_batches=config.limit_train_batches,
        num_sanity_val_steps=0,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m train.finetune",
        description=(
            "Fine-tune the Mobile VLA (Kosmos-2 + LoRA + LSTM head) with Lightning on episode folders "
            "in the real HDF5 format (real, simulated, or both). Keeps the top-3 checkpoints by val_loss "
            "plus last.ckpt, named like the real runs, and writes version_N/metrics.csv."
        ),
        epilog=(
            "examples:\n"
            "  python -m train.generate --episodes 400 --out data/sim\n"
            "  python -m train.finetune --data data/sim --max-epochs 5\n"
            "  python -m train.finetune --config my_run.json --backbone .vlms/kosmos-2-patch14-224 \\\n"
            "      --data data/sim ROS_action/mobile_vla_dataset --precision 16-mixed"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=DEFAULT_CONFIG,
        help="RoboVLMs config JSON of the run (default: the tiny CPU preset)",
    )
    parser.add_argument(
        "--data",
        nargs="+",
        metavar="DIR[:rgb|:bgr]",
        help="episode folders in any of the team's layouts (collector, v3, v5); each file's recorded colour "
        "order is followed (the team's files without the attribute are BGR), so the model sees true colours; "
        "':rgb' or ':bgr' declares a folder's order instead; the order the model saw goes into the recipe",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("runs"),
        help="output root; the run goes to OUT/<exp>/kosmos/<task>/<date>/<exp>/ (default runs/)",
    )
    parser.add_argument("--run-dir", type=Path, help="write the run exactly here instead")
    parser.add_argument(
        "--backbone", help="backbone preset ('tiny') or a local microsoft/kosmos-2-patch14-224 folder"
    )
    parser.add_argument("--max-epochs", type=int)
    parser.add_argument("--lr", type=float, help="AdamW learning rate")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--accumulate", type=int, help="gradient accumulation steps")
    parser.add_argument("--precision", help="Lightning precision: 32-true, 16-mixed (CUDA), bf16-mixed")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--exp-name")
    parser.add_argument(
        "--split",
        choices=["sorted", "stratified"],
        help="episode-level split: 'sorted' file names (the real run) or per-scenario stratified",
    )
    parser.add_argument(
        "--windows",
        choices=["real", "every_step"],
        help="'real' (the RoboVLMs loader's windows) or 'every_step' (one window per key press)",
    )
    parser.add_argument(
        "--mirror", choices=["none", "random", "double"], help="left/right mirror augmentation"
    )
    parser.add_argument("--num-workers", type=int, default=0, help="DataLoader worker processes (default 0)")
    parser.add_argument(
        "--limit-train-batches", type=float, help="fraction (or number, if >1) of train batches per epoch"
    )
    parser.add_argument(
        "--save-top-k",
        type=int,
        default=3,
        help="checkpoints kept by val_loss, besides last.ckpt (default 3, as the real runs; -1 keeps every epoch)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _summary_table(result: dict[str, Any]) -> str:
    lines = [
        f"run folder: {result['run_dir']}  ({result['seconds']} s, "
        f"{result['train_windows']} train / {result['val_windows']} val windows)",
        f"{'checkpoint':<52}{'val_loss':>10}",
    ]
    for name, loss in result["best_k_models"].items():
        lines.append(f"{name:<52}{loss:>10.4f}")
    lines.append(f"{Path(result['last_model_path']).name:<52}{'(last)':>10}")
    lines += [f"note: {n}" for n in result["notes"]]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if not args.quiet else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        configs = apply_overrides(load_config(args.config), args)
        data = [
            DataSpec.parse(d)
            for d in (args.data or configs.get("train_dataset", {}).get("data_dir_local", []))
        ]
        limit = args.limit_train_batches
        if limit is not None and limit > 1:
            limit = int(limit)
        config = FinetuneConfig(
            configs=configs,
            data=data,
            out=args.out,
            run_dir=args.run_dir,
            num_workers=args.num_workers,
            limit_train_batches=limit,
            save_top_k=args.save_top_k,
            progress=not args.quiet,
        )
        result = run(config)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(_summary_table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
