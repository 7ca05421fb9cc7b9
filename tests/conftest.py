import os
import tempfile

# Nothing may load from a model hub, in tests or anywhere else.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Engines built or faked by tests never land in the user's cache folder (usclip_sdk.settings).
os.environ["USCLIP_ENGINE_CACHE"] = tempfile.mkdtemp(prefix="usclip-test-engines-")


def pytest_collection_modifyitems(config, items):
    # tests/train/ needs the [train] extra (torch, open_clip): mark it, so an SDK-only checkout
    # can run `pytest -m "not train"`. Tests over a few seconds carry @pytest.mark.slow
    # themselves (`pytest -m "not slow"` is the quick loop while developing).
    import pytest

    for item in items:
        if "tests/train/" in item.nodeid.replace("\\", "/") or item.nodeid.startswith("train/"):
            item.add_marker(pytest.mark.train)
