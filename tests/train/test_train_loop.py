"""The training loop on a tiny model and tiny data: loss goes down, resume is exact, and a
2-process gloo torchrun run works."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("open_clip")

from usclip_train.config import RunConfig  # noqa: E402
from usclip_train.train import lr_lambda, train  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from train_fixtures import make_dataset, make_text_model

    base = tmp_path_factory.mktemp("loop")
    data = make_dataset(base / "data", n=48, size=40)
    text = make_text_model(base / "bert")
    cfg = RunConfig(data=str(data), model="usclip-tiny", text_model=str(text), batch_size=8,
                    max_steps=12, lr=2e-3, warmup_steps=2, save_every=6, log_every=1,
                    eval_at_end=False, progress=False, seed=0)
    return base, cfg


def _losses(run: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in map(json.loads, (run / "log.jsonl").read_text().splitlines())}


@pytest.mark.slow
def test_loss_goes_down_and_resume_reproduces_the_curve(tiny):
    base, cfg = tiny
    full = train(cfg, base / "full")
    curve = _losses(base / "full")
    assert full.steps == 12 and sorted(curve) == list(range(1, 13))
    saved = json.loads((base / "full" / "checkpoints" / "step-00000012" / "config.json").read_text())
    assert set(saved["label_support"]) == {"Diagnosis", "Echogenicity"}  # what the data carries
    first, last = sum(curve[s] for s in (1, 2, 3)) / 3, sum(curve[s] for s in (10, 11, 12)) / 3
    assert last < first - 0.1, curve
    # Simulate a crash right after the step-6 checkpoint: a run folder holding only it.
    resumed = base / "resumed"
    (resumed / "checkpoints").mkdir(parents=True)
    shutil.copytree(base / "full" / "checkpoints" / "step-00000006",
                    resumed / "checkpoints" / "step-00000006")
    (resumed / "checkpoints" / "latest").write_text("step-00000006\n")
    again = train(cfg, resumed, resume=True)
    tail = _losses(resumed)
    assert again.steps == 12 and sorted(tail) == list(range(7, 13))
    for s in range(7, 13):
        assert tail[s] == pytest.approx(curve[s], rel=1e-5, abs=1e-6), (s, tail[s], curve[s])


def test_gradient_accumulation_and_plain_clip_variant(tiny):
    base, cfg = tiny
    cfg = cfg.with_overrides({"use_graph": False, "use_soft_labels": False, "grad_accum": 2,
                              "batch_size": 4, "max_steps": 3, "save_every": 0})
    res = train(cfg, base / "plain")
    rec = [json.loads(x) for x in (base / "plain" / "log.jsonl").read_text().splitlines()]
    assert res.steps == 3 and all(r["clip"] == pytest.approx(r["loss"]) for r in rec)


def test_cosine_schedule_with_warmup():
    f = lr_lambda(total_steps=10, warmup=2, min_ratio=0.1)
    assert [round(f(s), 4) for s in (0, 1)] == [0.5, 1.0]
    assert f(2) == pytest.approx(1.0) and f(10) == pytest.approx(0.1)
    assert all(f(s) >= f(s + 1) for s in range(2, 10))


@pytest.mark.slow
def test_two_process_gloo_torchrun(tiny):
    base, cfg = tiny
    out = base / "ddp"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "usclip_train.train", "--data", cfg.data, "--model", "usclip-tiny", "--out", str(out),
           "--set", f"text_model={cfg.text_model}", "--set", "batch_size=4", "--set", "max_steps=3",
           "--set", "log_every=1", "--set", "save_every=0", "--set", "eval_at_end=false",
           "--set", "progress=false", "--set", "warmup_steps=1"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["steps"] == 3
    assert sorted(_losses(out)) == [1, 2, 3]
    assert (out / "checkpoints" / "step-00000003" / "model.safetensors").is_file()
    from usclip_train.checkpoint import load_model

    model, pre, tok = load_model(out)
    assert pre.image_size == (32, 32)


def test_locked_text_cache_matches_the_uncached_tower(tiny):
    from usclip_train import factory
    from usclip_train.train import cache_frozen_text

    _, cfg = tiny
    spec = factory.resolve_spec("usclip-tiny", text_model=cfg.text_model)
    model = factory.build_model(spec).eval()
    tok = factory.TextTokenizer(spec.tokenizer_path, spec.context_length)
    ids = tok(["a cyst", "a liver nodule with ill-defined margins and posterior shadowing", "a cyst"])
    with torch.no_grad():
        ref = model.encode_text(ids)
    model.text.transformer.requires_grad_(False)
    cache = cache_frozen_text(model)
    model.train()  # the cache switches the frozen tower's dropout off itself
    for _ in range(2):  # a miss, then hits
        out = model.encode_text(ids)
        assert torch.allclose(out, ref, atol=1e-5)
    assert len(cache) == 2 and out.requires_grad  # the projection still trains


def test_partly_unlocked_text_caches_the_frozen_prefix_and_trains_the_top(tiny):
    from usclip_train import factory
    from usclip_train.train import cache_frozen_text

    _, cfg = tiny
    spec = factory.resolve_spec("usclip-tiny", text_model=cfg.text_model)
    model = factory.build_model(spec).eval()
    tok = factory.TextTokenizer(spec.tokenizer_path, spec.context_length)
    ids = tok(["a cyst", "a liver nodule with ill-defined margins", "a cyst"])
    with torch.no_grad():
        ref = model.encode_text(ids)
    layers = list(model.text.transformer.encoder.layer)
    model.text.transformer.requires_grad_(False)
    layers[-1].requires_grad_(True)
    cache = cache_frozen_text(model, unlocked_layers=1)
    model.eval()  # compare without dropout in the unlocked layer
    out = model.encode_text(ids)
    assert torch.allclose(out, ref, atol=1e-5)  # prefix cache + live top == the whole tower
    out.sum().backward()
    assert layers[-1].attention.self.query.weight.grad is not None  # the top layer learns
    assert all(p.grad is None for p in layers[0].parameters())    # the prefix does not
    assert len(cache) == 2


@pytest.mark.parametrize("use_graph", [True, False])
def test_final_evaluation_scores_a_graph_model_with_graph_anchors(tiny, monkeypatch, use_graph):
    """A model trained with the attribute graph is aligned with fused text: its end-of-run
    zero-shot (what bench/ablation.py compares) must use the graph anchors the export ships,
    not label-free ones; a model without the graph keeps the text tower's anchors."""
    import usclip_train.export.bundle_writer as bw

    base, cfg = tiny
    calls = []
    real = bw.graph_class_embeddings

    def spy(model, tokenizer, fusion, prompt_set="held_out"):
        calls.append(prompt_set)
        out = real(model, tokenizer, fusion, prompt_set=prompt_set)
        assert out.shape[0] == 93 and np.allclose(np.linalg.norm(out, axis=1), 1, atol=1e-5)
        return out

    monkeypatch.setattr(bw, "graph_class_embeddings", spy)
    run = base / f"eval-graph-{use_graph}"
    res = train(cfg.with_overrides({"max_steps": 2, "save_every": 0, "eval_at_end": True,
                                    "use_graph": use_graph}), run)
    assert calls == (["train"] if use_graph else [])
    assert 0 <= res.metrics["AvgAcc"] <= 1
    assert (run / "eval-valid" / "results.json").is_file()


def test_locked_image_tower_stays_exactly_as_loaded_while_the_text_side_learns(tiny):
    """lock_image (a text-side stage): the image tower's weights and BatchNorm statistics are
    bit-identical after training from a checkpoint, the text projection moved."""
    from usclip_train.factory import build_model, load_weights, resolve_spec

    base, cfg = tiny
    cfg = cfg.with_overrides({"model": "usclip-edge-conv", "image_size": 48, "use_graph": False,
                              "max_steps": 2, "save_every": 0})
    first = train(cfg, base / "image-a")
    locked = train(cfg.with_overrides({"init_checkpoint": str(first.checkpoint), "lock_image": True,
                                       "prompt_loss": 1.0, "max_steps": 3, "lr": 1e-2}), base / "image-b")

    def state(ckpt):
        spec = resolve_spec("usclip-edge-conv", text_model=cfg.text_model,
                            overrides={"vision_cfg": {"image_size": 48}})
        model = build_model(spec, pretrained_text=False)
        assert not load_weights(model, ckpt).missing
        return {k: v.clone() for k, v in model.state_dict().items()}

    a, b = state(first.checkpoint), state(locked.checkpoint)
    visual = [k for k in a if k.startswith("visual.")]
    assert any("running_mean" in k for k in visual)  # BatchNorm statistics are among them
    assert all(torch.equal(a[k], b[k]) for k in visual), [k for k in visual if not torch.equal(a[k], b[k])]
    text = [k for k in a if k.startswith("text.") and not torch.equal(a[k], b[k])]
    assert text, "the text side did not train"
