"""Numbers the docs state about the code, read from the code (issue 16, item 12: the docs had
drifted to a 30-frame IoU refresh and a 224 px encoder input)."""
import inspect
import re
from pathlib import Path

from usclip_sdk.classifier import Classifier
from usclip_sdk.region import RegionTracker

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_region_md_states_the_tracker_defaults():
    text = " ".join((DOCS / "region.md").read_text().split())
    t = RegionTracker()
    stream_default = inspect.signature(Classifier.stream).parameters["refresh_region_every"].default
    assert f"(default {t.refresh_every};" in text and f"refresh_region_every={stream_default}" in text
    assert f"({t.tolerance})" in text and "fingerprint" in text
    assert "IoU < `replace_below`" not in text


def test_jetson_md_states_the_shipped_input_size():
    from usclip_sdk.bundle import Bundle
    from usclip_sdk.models import default_bundle_path

    with Bundle.open(default_bundle_path()) as b:
        h, w = b.manifest.preprocess.image_size
    text = " ".join((DOCS / "jetson.md").read_text().split())
    assert f"{h}x{w} for the shipped usclip-edge" in text
    assert not re.search(r"encoder always sees\s+224", text)
