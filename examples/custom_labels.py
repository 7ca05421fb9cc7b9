"""Zero-shot with your own labels: the bundle's text tower encodes them once (cached).

python examples/custom_labels.py IMAGE_OR_DICOM ["label one" "label two" ...]
"""
from __future__ import annotations

import sys

from usclip_sdk import Classifier


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    labels = sys.argv[2:] or ["a simple cyst", "a solid nodule", "normal tissue"]
    clf = Classifier()
    # Templates turn each label into a prompt ensemble; {} receives the label.
    clf.set_labels(labels, templates=["an ultrasound image of {}.", "a sonogram showing {}."])
    p = clf.classify(sys.argv[1])
    for label, prob in p.topk:
        print(f"{prob:6.1%}  {label}")
    print(f"(organ: {p.organ}; region {p.region['kind']} {p.region['bbox']})")


if __name__ == "__main__":
    main()
