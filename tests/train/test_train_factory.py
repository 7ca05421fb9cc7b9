"""Model factory: configs build offline, tokenizer parity, text/checkpoint overrides."""
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("open_clip")

from usclip_train import factory  # noqa: E402


def test_registry_lists_shipped_configs():
    names = factory.list_models()
    assert {"usclip-edge", "usclip-edge-conv", "usclip-b16", "usclip-tiny"} <= set(names)
    with pytest.raises(ValueError, match="unknown name"):
        factory.model_config("no-such-model")


def test_edge_builds_offline_with_edge_sized_image_tower():
    model, pre, tok = factory.create_model("usclip-edge")
    n = factory.count_parameters(model)
    assert 5e6 <= n["image"] <= 10e6, n
    assert pre.image_size == (224, 224) and tok.context_length == 64
    assert tok.path.endswith("tokenizer.json")
    with torch.no_grad():
        img = model.encode_image(torch.zeros(1, 3, 224, 224), normalize=True)
        txt = model.encode_text(tok(["a hypoechoic nodule"]), normalize=True)
    assert img.shape == txt.shape == (1, 256)


def test_edge_conv_builds_a_timm_resnet_tower_at_128_px():
    from usclip_train.train import TrainModule

    model, pre, tok = factory.create_model("usclip-edge-conv")
    n = factory.count_parameters(model)
    assert 4e6 <= n["image"] <= 6e6, n  # resnet10t + a linear projection
    assert pre.image_size == (128, 128) and tok.context_length == 48
    assert factory.embed_dim_of(model) == 256  # read from the text tower: timm towers have no output_dim
    assert not hasattr(model.visual, "output_dim") or model.visual.output_dim == 256
    module = TrainModule(model)
    assert module.channels_last  # convolutions train channels-last on CPU (oneDNN's fast layout)
    with torch.no_grad():
        img = model.encode_image(torch.rand(2, 3, 128, 128), normalize=True)
        txt = model.encode_text(tok(["a hypoechoic nodule", "normal liver"]), normalize=True)
    assert img.shape == txt.shape == (2, 256)
    assert torch.allclose(img.norm(dim=1), torch.ones(2), atol=1e-5)
    assert not torch.allclose(img[0], img[1])  # different pixels, different embeddings


def test_text_tower_loads_pretrained_minilm_weights():
    from safetensors.torch import load_file

    spec = factory.resolve_spec("usclip-edge")
    model = factory.build_model(spec)
    ref = load_file(f"{spec.text_dir}/model.safetensors")
    key = next(k for k in ref if k.endswith("word_embeddings.weight"))
    ours = model.text.transformer.state_dict()["embeddings.word_embeddings.weight"]
    assert torch.equal(ours, ref[key])


def test_tokenizer_matches_transformers():
    from transformers import AutoTokenizer

    spec = factory.resolve_spec("usclip-edge")
    tok = factory.TextTokenizer(spec.tokenizer_path, 16)
    texts = ["An ultrasound image of the Liver.", "ill-defined/indistinct margins with " * 5]
    ref = AutoTokenizer.from_pretrained(spec.text_dir)(texts, padding="max_length", max_length=16,
                                                       truncation=True)["input_ids"]
    assert tok(texts).tolist() == ref


def test_b16_builds_offline():
    spec = factory.resolve_spec("usclip-b16")
    model = factory.build_model(spec, pretrained_text=False)
    n = factory.count_parameters(model)
    assert 80e6 <= n["image"] <= 90e6, n


def test_text_model_override_and_image_size(tmp_path):
    from train_fixtures import make_text_model

    text = make_text_model(tmp_path / "bert")
    model, pre, tok = factory.create_model("usclip-tiny", text_model=text,
                                           overrides={"vision_cfg": {"image_size": 48}})
    assert pre.image_size == (48, 48)
    assert model.text.config.hidden_size == 32
    with torch.no_grad():
        assert model.encode_image(torch.zeros(2, 3, 48, 48)).shape == (2, 32)


def test_user_open_clip_checkpoint_is_loaded_by_name_and_shape(tmp_path):
    from train_fixtures import make_text_model

    text = make_text_model(tmp_path / "bert")
    src, _, _ = factory.create_model("usclip-tiny", text_model=text)
    sd = {"module." + k: v.clone() + 1.0 for k, v in src.state_dict().items() if k.startswith("visual.")}
    sd["module.something_else"] = torch.zeros(3)
    path = tmp_path / "user.pt"
    torch.save({"state_dict": sd, "epoch": 3}, path)  # open_clip_train's layout
    model, _, _ = factory.create_model("usclip-tiny", text_model=text)
    report = factory.load_weights(model, path)
    assert report.loaded == len(sd) - 1 and report.unexpected == ("something_else",)
    assert torch.equal(model.visual.conv1.weight, src.visual.conv1.weight + 1.0)
    with pytest.raises(ValueError, match="loaded 0"):
        torch.save({"x": torch.zeros(1)}, tmp_path / "bad.pt")
        factory.load_weights(model, tmp_path / "bad.pt")


def test_graph_text_head_is_layernorm_of_rms_normalised_projection(tmp_path):
    from train_fixtures import make_text_model

    text = make_text_model(tmp_path / "bert")
    spec = factory.resolve_spec("usclip-tiny", text_model=text, overrides={"text_head": "graph_norm"})
    model = factory.build_model(spec)
    head = factory.text_head_of(model)
    assert head is not None
    t = torch.randn(4, 32) * 7
    expected = torch.nn.functional.layer_norm(t / t.pow(2).mean(-1, keepdim=True).sqrt(), (32,),
                                              head.norm.weight, head.norm.bias)
    assert torch.allclose(head(t), expected, atol=1e-5)
    with pytest.raises(ValueError, match="text_head"):
        factory.build_model(factory.resolve_spec("usclip-tiny", text_model=text,
                                                 overrides={"text_head": "bogus"}))
