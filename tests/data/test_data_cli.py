"""`usclip synth` end to end: argument parsing, summary, contact sheet, and a real run of the
command (``python -m usclip_sdk.cli synth``) on the synthetic engine."""
from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import argparse

import pytest

from usclip_data.cli import synth
from usclip_data.cli.synth import parse_size, parse_views
from usclip_data import us365k
from usclip_data.contact_sheet import contact_sheet, tile_text
from usclip_data.sample import load_rgb
from usclip_data.us365k import US365K
from usclip_sdk import taxonomy as tx

from test_data_us365k import fake_render_view, fake_sample_case


def test_parse_size_and_views():
    assert parse_size("256") == (256, 256) and parse_size("240x320") == (240, 320)
    assert parse_size("auto") is None
    assert parse_views("3") == (3, 3) and parse_views("2,4") == (2, 4)
    for bad in ("16", "1x2x3", "abc"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_size(bad)
    for bad in ("4,2", "0", "a,b"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_views(bad)


def _synth_main(argv: list[str]) -> int:
    """The synth command alone (main() would import every command, torch ones included)."""
    parser = argparse.ArgumentParser()
    synth.register(parser.add_subparsers())
    args = parser.parse_args(["synth", *argv])
    return args.func(args)


@pytest.fixture
def fake_engine(monkeypatch):
    real = us365k.write_dataset
    monkeypatch.setattr(us365k, "write_dataset", functools.partial(
        real, sampler=fake_sample_case, renderer=fake_render_view))


def test_cli_writes_summary_and_contact_sheet(tmp_path, capsys, fake_engine):
    out, sheet = tmp_path / "ds", tmp_path / "sheet.png"
    rc = _synth_main(["--out", str(out), "--n", "6", "--seed", "2", "--size", "64x80",
                      "--views", "2,2", "--workers", "1", "--contact-sheet", str(sheet), "--json"])
    cap = capsys.readouterr()
    assert rc == 0
    summary = json.loads(cap.out)
    assert summary["images"] == 12 and sum(summary["per_split"].values()) == 12
    assert "usclip synth" in cap.err  # the progress bar went to stderr
    assert len(US365K(out, "all")) == 12 and sheet.stat().st_size > 1000
    rc = _synth_main(["--out", str(out), "--n", "2", "--quiet"])
    assert rc == 1 and "overwrite" in capsys.readouterr().err


def test_contact_sheet_grid(tmp_path):
    us365k.write_dataset(tmp_path / "d", 5, 1, (2, 2), (40, 60), 1, progress=False,
                         sampler=fake_sample_case, renderer=fake_render_view)
    ds = US365K(tmp_path / "d", "all")
    grid = contact_sheet(ds, tmp_path / "s.png", n=7, cols=3, tile=64)
    rows = max(len(tile_text(s)) for s in ds)
    assert grid.shape[1] == 3 * 64 and grid.shape[0] % 3 == 0
    assert grid.shape[0] >= 3 * (64 + rows * 13)
    assert tile_text(ds[0])[0] == ds[0].labels["Organ_level"][0]
    with pytest.raises(ValueError, match="empty"):
        contact_sheet([], tmp_path / "x.png")
    from usclip_data.contact_sheet import _spread

    picked = [Path(ds[int(i)].image_path).name.split("_v")[0] for i in _spread(ds, 5, 3)]
    assert len(set(picked)) == 5  # five cases, not several views of fewer


def _engine_available() -> bool:
    try:
        from usclip_data.synth import render_view, sample_case  # noqa: F401
    except ImportError:
        return False
    return True


def _check_labels_against_params(labels: dict, p: dict) -> None:
    """Each written label is the renderer's truth (params), never a guess."""
    assert labels["Organ_level"] == (p["organ"],)
    assert labels["Body_system_level"] in ((), (tx.system_of(p["organ"]),))
    assert labels["Diagnosis"] in ((), (p["diagnosis"],))
    les = p["lesion"]
    if les is None:
        assert all(labels[f] == () for f in tx.FIELDS[3:])
        return
    for field, key in (("Shape", "shape"), ("Margins", "margins"), ("Echogenicity", "echogenicity"),
                       ("PosteriorAcoustics", "posterior"), ("Vascularity", "vascularity")):
        assert labels[field] in ((), (les[key],)), (field, labels[field], les[key])
    assert set(labels["InternalCharacteristics"]) <= set(les["internal"])
    if labels["Vascularity"]:
        assert p["doppler"] is not None  # flow is labelled only where Doppler shows it


@pytest.mark.skipif(not _engine_available(), reason="synthetic engine (synth.render_view) not importable")
def test_cli_end_to_end_real_engine(tmp_path):
    out, sheet = tmp_path / "real", tmp_path / "sheet.png"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    r = subprocess.run([sys.executable, "-m", "usclip_sdk.cli", "synth", "--out", str(out), "--n", "6",
                        "--seed", "7", "--size", "128", "--views", "1,2", "--workers", "2", "--json",
                        "--contact-sheet", str(sheet)],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    ds = US365K(out, "all")
    assert len(ds) == summary["images"] >= 6 and sheet.is_file()
    cases = {json.loads(line)["media_name"]: json.loads(line) for line in open(out / "cases.jsonl")}
    for s in ds:
        name = Path(s.image_path).name
        img = s.load_rgb()
        assert img.shape == (128, 128, 3) and img.std() > 5  # a real picture, not a blank
        _check_labels_against_params(s.labels, cases[name]["params"])
        region = load_rgb(out / "masks" / name)[:, :, 0] > 0
        assert 0.1 < region.mean() < 0.95
    assert len({s.caption for s in ds}) == len(ds)
    # the real engine is deterministic too: in-process, one worker, same files as the CLI's pool
    us365k.write_dataset(tmp_path / "again", 6, 7, (1, 2), (128, 128), workers=1, progress=False)
    for p in sorted(out.rglob("*")):
        if p.is_file():
            assert (tmp_path / "again" / p.relative_to(out)).read_bytes() == p.read_bytes(), p.name


def test_progress_bar_lines_into_a_pipe_and_silence_when_disabled():
    import io

    from usclip_data.progress import Progress

    buf = io.StringIO()
    with Progress(200, "img", "synth", stream=buf) as bar:
        for _ in range(200):
            bar.update()
    lines = buf.getvalue().splitlines()
    assert 10 <= len(lines) <= 11  # one line per tenth into a non-terminal
    assert lines[-1].startswith("synth: 100.0%") and "200/200 img" in lines[-1]
    quiet = io.StringIO()
    with Progress(5, stream=quiet, enabled=False) as bar:
        bar.update(5)
    assert quiet.getvalue() == "" and bar.n == 5
    with pytest.raises(ValueError, match="total"):
        Progress(-1)
