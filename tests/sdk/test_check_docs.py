"""scripts/check_docs.py: what it extracts from markdown and what it runs, reduces or skips
(the CI step itself runs the real docs; this keeps its rules honest in seconds)."""
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("check_docs", ROOT / "scripts" / "check_docs.py")
check_docs = importlib.util.module_from_spec(spec)
sys.modules["check_docs"] = check_docs  # its dataclasses look their module up
spec.loader.exec_module(check_docs)

DOC = """# x
```
usclip diagram --not-a-command
```
```bash
# a comment line
usclip export runs/edge --out m \\
  --zip                     # joined
usclip bench --backend tensorrt --device cuda --iters 300
python bench/region_score.py --n 300 --seed 0 --worst /tmp/w
usclip calibrate BUNDLE --data DIR [--split valid]
python - <<'PY'
print("inside")
PY
usclip build-engine m.zip --precision fp16
```
"""


def test_extract_and_plan(tmp_path):
    md = tmp_path / "doc.md"
    md.write_text(DOC)
    (block,) = check_docs.extract(md)
    cmds = check_docs.plan_block(block)
    texts = [c.text for c in cmds]
    assert texts[0] == "usclip export runs/edge --out m --zip                     # joined"
    assert cmds[0].source.endswith("doc.md:7") and cmds[0].run == cmds[0].text
    assert cmds[1].run is None and "GPU" in cmds[1].note
    assert cmds[2].run == "python bench/region_score.py --n 12 --seed 0 --worst tmp/w"
    assert cmds[3].run is None and "synopsis" in cmds[3].note
    assert cmds[4].text == "python - <<'PY'\nprint(\"inside\")\nPY" and cmds[4].run == cmds[4].text
    expect_trt = 0 if importlib.util.find_spec("tensorrt") else 3
    assert cmds[5].expect == expect_trt
    assert len(cmds) == 6  # the unlabeled fence and the comment line are not commands


def test_every_skip_of_the_real_docs_has_a_reason():
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    cmds = [c for f in files for b in check_docs.extract(f) for c in check_docs.plan_block(b)]
    assert any(c.run for c in cmds) and all(c.note.startswith("skipped: ") and len(c.note) > 20
                                            for c in cmds if c.run is None)
