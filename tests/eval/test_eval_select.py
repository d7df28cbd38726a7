"""Checkpoint selection: callback state with foreign paths, both file-name forms, metrics.csv, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from eval_helpers import callback_state, real_name, touch_order, write_fake_ckpt

from eval.select import (
    SelectionError,
    find_run_dir,
    parse_checkpoint_name,
    read_checkpoint_meta,
    resolve_checkpoints,
)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("epoch_epoch=06-val_loss=val_loss=0.067.ckpt", (6, 0.067)),
        ("epoch=6-val_loss=0.067.ckpt", (6, 0.067)),
        ("epoch_12-val_loss=1.5e-02.ckpt", (12, 0.015)),
        ("epoch_epoch=03.ckpt", (3, None)),
        ("last.ckpt", (None, None)),
        ("model-step=100.ckpt", (None, None)),
    ],
)
def test_parse_checkpoint_name_both_forms(name: str, expected: tuple) -> None:
    assert parse_checkpoint_name(name) == expected


def make_run(root: Path, losses: dict[int, float], *, state: bool = True, last: bool = True) -> Path:
    """A run folder like train.finetune writes: top-k files, last.ckpt (holding the callback state)."""
    run = root / "exp" / "kosmos" / "mobile_vla_finetune" / "2025-11-14" / "exp_name"
    files = []
    best_k = {real_name(e, v): v for e, v in losses.items()}
    for e, v in losses.items():
        files.append(write_fake_ckpt(run / real_name(e, v), e))
    if last:
        last_epoch = max(losses) + 1
        st = callback_state(best_k, current=0.2) if state else None
        files.append(write_fake_ckpt(run / "last.ckpt", last_epoch, st))
    touch_order(files)
    return run


def test_top3_from_callback_state_rebases_foreign_paths(tmp_path: Path) -> None:
    run = make_run(tmp_path / "runs", {2: 0.09, 4: 0.067, 6: 0.071})
    meta = read_checkpoint_meta(run / "last.ckpt")
    assert meta is not None and meta["state"] is not None
    assert all(p.startswith("/home/trainer") for p in meta["state"]["best_k_models"])

    sel = resolve_checkpoints(["top3"], tmp_path / "runs", runs_explicit=True)
    assert sel.run_dir == run
    assert [c.epoch for c in sel.choices] == [4, 6, 2]
    assert [c.val_loss for c in sel.choices] == pytest.approx([0.067, 0.071, 0.09])
    assert all(c.val_loss_source == "callback_state" for c in sel.choices)
    assert all(c.path.parent == run.resolve() and c.path.exists() for c in sel.choices)
    assert [c.role for c in sel.choices] == ["top1", "top2", "top3"]
    assert sel.choices[0].policy_id == "epoch04-val0.067"


def test_callback_state_beats_file_names_and_skips_deleted_files(tmp_path: Path) -> None:
    run = tmp_path / "run"
    # the callback state says epoch 1 is best, although its name claims otherwise
    a = write_fake_ckpt(run / real_name(1, 0.5), 1)
    b = write_fake_ckpt(run / real_name(3, 0.1), 3)
    state = callback_state({a.name: 0.05, b.name: 0.1, real_name(9, 0.01): 0.01})  # epoch 9 was deleted
    last = write_fake_ckpt(run / "last.ckpt", 4, state)
    touch_order([a, b, last])
    sel = resolve_checkpoints(["top3"], run, runs_explicit=True)
    assert [c.path.name for c in sel.choices] == [a.name, b.name]
    assert sel.choices[0].val_loss == pytest.approx(0.05)
    assert any("not in" in n and real_name(9, 0.01) in n for n in sel.notes)
    assert any("only 2" in n for n in sel.notes)


def test_top_k_from_file_names_without_callback_state(tmp_path: Path) -> None:
    run = tmp_path / "run"
    files = [
        write_fake_ckpt(run / "epoch=1-val_loss=0.300.ckpt", 1),
        write_fake_ckpt(run / real_name(2, 0.2), 2),
        write_fake_ckpt(run / "epoch=3-val_loss=0.250.ckpt", 3),
        write_fake_ckpt(run / "last.ckpt", 3),
    ]
    touch_order(files)
    sel = resolve_checkpoints(["top2", "last"], run, runs_explicit=True)
    assert [c.epoch for c in sel.choices[:2]] == [2, 3]
    assert all(c.val_loss_source == "file_name" for c in sel.choices[:2])
    last = sel.choices[2]
    assert last.role == "last" and last.policy_id == "last" and last.epoch == 3


def test_val_loss_from_metrics_csv_by_epoch(tmp_path: Path) -> None:
    run = tmp_path / "run"
    files = [write_fake_ckpt(run / f"epoch_epoch={e:02d}.ckpt", e) for e in (0, 1, 2)]
    touch_order(files)
    (run / "version_0").mkdir()
    (run / "version_0" / "metrics.csv").write_text(
        "epoch,step,train_loss,val_loss\n0,9,0.5,\n0,9,,0.30\n1,19,0.4,\n1,19,,0.10\n2,29,,0.20\n"
    )
    sel = resolve_checkpoints(["top3"], run, runs_explicit=True)
    assert [c.epoch for c in sel.choices] == [1, 2, 0]
    assert [c.val_loss for c in sel.choices] == pytest.approx([0.10, 0.20, 0.30])
    assert {c.val_loss_source for c in sel.choices} == {"metrics_csv"}


def test_best_and_explicit_path_merge_duplicates(tmp_path: Path) -> None:
    run = make_run(tmp_path, {1: 0.2, 2: 0.1})
    explicit = run / real_name(2, 0.1)
    sel = resolve_checkpoints(["best", str(explicit), "top1"], tmp_path, runs_explicit=True)
    assert len(sel.choices) == 1
    assert sel.choices[0].role == "best+top1+explicit"
    assert sel.choices[0].val_loss == pytest.approx(0.1)


def test_explicit_path_alone_carries_val_loss(tmp_path: Path) -> None:
    path = write_fake_ckpt(tmp_path / "x" / real_name(7, 0.042), 7)
    sel = resolve_checkpoints([str(path)], tmp_path / "nowhere")
    assert sel.run_dir is None
    (c,) = sel.choices
    assert (c.epoch, c.val_loss, c.val_loss_source, c.role) == (7, 0.042, "file_name", "explicit")


def test_newest_run_folder_wins(tmp_path: Path) -> None:
    old = make_run(tmp_path / "a", {1: 0.1})
    new = tmp_path / "b" / "run"
    f = write_fake_ckpt(new / real_name(1, 0.3), 1)
    touch_order([*old.glob("*.ckpt"), f])
    assert find_run_dir(tmp_path)[0] == new


def test_missing_explicit_path_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(SelectionError) as err:
        resolve_checkpoints([str(tmp_path / "nope.ckpt")], tmp_path)
    msg = str(err.value)
    assert "nope.ckpt" in msg and "\n" not in msg and "--ckpt" in msg


def test_empty_named_run_folder_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(SelectionError) as err:
        resolve_checkpoints(["top3"], tmp_path / "empty", runs_explicit=True)
    assert str(tmp_path / "empty") in str(err.value) and "--runs" in str(err.value)
    with pytest.raises(SelectionError, match="does not exist"):
        resolve_checkpoints(["top3"], tmp_path / "missing", runs_explicit=True)


def test_default_runs_without_checkpoints_falls_back_to_reference(tmp_path: Path, caplog) -> None:
    reference = make_run(tmp_path / "ref", {5: 0.08, 6: 0.07, 7: 0.09})
    sel = resolve_checkpoints(["top3"], tmp_path / "runs", reference_dir=reference)
    assert sel.used_reference and sel.run_dir == reference
    assert len(sel.choices) == 3
    assert any(str(tmp_path / "runs") in n and "reference" in n for n in sel.notes)
    assert any(str(tmp_path / "runs") in s for s in sel.searched)
    assert "reference" in caplog.text


def test_no_checkpoints_anywhere_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(SelectionError) as err:
        resolve_checkpoints(["top3"], tmp_path / "runs", reference_dir=tmp_path / "ref")
    assert str(tmp_path / "runs") in str(err.value) and str(tmp_path / "ref") in str(err.value)


def test_corrupt_checkpoint_does_not_break_selection(tmp_path: Path) -> None:
    run = tmp_path / "run"
    good = write_fake_ckpt(run / real_name(1, 0.2), 1)
    bad = run / real_name(2, 0.1)
    bad.write_bytes(b"this is not a checkpoint")
    touch_order([good, bad])
    sel = resolve_checkpoints(["top3"], run, runs_explicit=True)
    assert [c.path.name for c in sel.choices] == [bad.name, good.name]


def test_bad_top_k(tmp_path: Path) -> None:
    make_run(tmp_path, {1: 0.1})
    with pytest.raises(SelectionError, match="at least 1"):
        resolve_checkpoints(["top0"], tmp_path, runs_explicit=True)
