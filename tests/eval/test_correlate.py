"""eval.correlate: MMRV and correlations on hand-checkable inputs, the CSV and results readers, the CLI."""

from __future__ import annotations

import json

import pytest

from eval.correlate import CorrelateError, correlate, correlations, main, mmrv, rank_violations, read_real_csv


def test_mmrv_and_correlations_by_hand():
    real = [0.9, 0.5, 0.1]
    assert mmrv(real, [0.8, 0.6, 0.2]) == 0.0
    # reversed: policy 0 and 2 violate against each other (gap 0.8), policy 1 against both (0.4)
    assert mmrv(real, [0.1, 0.5, 0.9]) == pytest.approx((0.8 + 0.4 + 0.8) / 3)
    # one swap of the two best: both get 0.1, the third none
    assert mmrv([0.6, 0.5, 0.1], [0.5, 0.6, 0.1]) == pytest.approx(0.2 / 3)
    assert rank_violations([0.6, 0.5, 0.1], [0.5, 0.6, 0.1]) == [(0, 1)]
    stats = correlations(real, [0.1, 0.5, 0.9])
    assert stats["pearson"] == pytest.approx(-1.0) and stats["spearman"] == pytest.approx(-1.0)
    assert correlations(real, [0.5, 0.5, 0.5])["pearson"] is None


def test_correlate_gives_intervals_that_hold_the_point(tmp_path):
    real = {"a": (9, 10), "b": (5, 10), "c": (1, 10)}
    sim = {"a": (45, 50), "b": (20, 50), "c": (5, 50), "d": (1, 50)}
    result = correlate(real, sim, resamples=300, seed=1)
    assert [r["id"] for r in result["policies"]] == ["a", "b", "c"] and result["sim_without_real"] == ["d"]
    for block in result["statistics"].values():
        lo, hi = block["ci95"]
        assert lo <= block["value"] <= hi
    assert result["statistics"]["mmrv"]["value"] == 0.0
    with pytest.raises(CorrelateError, match="need 3"):
        correlate({"a": (1, 2)}, sim)


def test_cli_reads_real_csv_and_results_folders(tmp_path, capsys):
    csv_path = tmp_path / "REAL.csv"
    csv_path.write_text("id,successes,trials\na,9,10\nb,5,10\nc,1,10\n")
    folder = tmp_path / "results"
    folder.mkdir()
    summary = {"policies": [{"policy_id": k, "overall": {"successes": s, "n": 20}} for k, s in
                            (("a", 2), ("b", 10), ("c", 18))]}  # fmt: skip
    (folder / "summary.json").write_text(json.dumps(summary))
    assert main(["--real", str(csv_path), str(folder), "--json", "--bootstrap", "200"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["statistics"]["pearson"]["value"] < -0.9 and out["statistics"]["mmrv"]["value"] > 0.5
    records = tmp_path / "jsonl"
    records.mkdir()
    (records / "episodes.jsonl").write_text(
        "\n".join(
            json.dumps({"policy_id": k, "success": i < n})
            for k, n in (("a", 3), ("b", 2), ("c", 1))
            for i in range(4)
        )
    )
    assert main(["--real", str(csv_path), str(records), "--bootstrap", "100"]) == 0
    assert "mmrv" in capsys.readouterr().out
    csv_path.write_text("id,wins\na,1\n")
    assert main(["--real", str(csv_path), str(folder)]) == 2
    assert read_real_csv.__doc__
