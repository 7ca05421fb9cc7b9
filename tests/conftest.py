import os
import tempfile

import pytest

# Nothing may load from a model hub, in tests or anywhere else.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Engines built or faked by tests never land in the user's cache folder (usclip_sdk.settings).
os.environ["USCLIP_ENGINE_CACHE"] = tempfile.mkdtemp(prefix="usclip-test-engines-")


@pytest.fixture(scope="module")
def bundle_path(tmp_path_factory):
    """The tiny but real bundle of tests/sdk_bundle.py (one per test module)."""
    from sdk_bundle import make_tiny_bundle

    return make_tiny_bundle(tmp_path_factory.mktemp("b") / "tiny")


@pytest.fixture(scope="module")
def clf(bundle_path):
    """A CPU onnxruntime Classifier on ``bundle_path`` (one per test module: set_labels stays local)."""
    from usclip_sdk import Classifier

    return Classifier.from_bundle(bundle_path, backend="onnxruntime", device="cpu")


def pytest_collection_modifyitems(config, items):
    # tests/train/ needs the [train] extra (torch, open_clip): mark it, so an SDK-only checkout
    # can run `pytest -m "not train"`. Tests over a few seconds carry @pytest.mark.slow
    # themselves (`pytest -m "not slow"` is the quick loop while developing).
    for item in items:
        if "tests/train/" in item.nodeid.replace("\\", "/") or item.nodeid.startswith("train/"):
            item.add_marker(pytest.mark.train)
