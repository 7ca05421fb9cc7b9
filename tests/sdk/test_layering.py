"""The dependency rules of docs/architecture.md, checked on the source (every import, also
those inside functions): usclip_sdk imports neither the data engine nor training nor torch;
usclip_data imports neither training nor torch; and the version is one number everywhere."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RULES = {
    ROOT / "python" / "usclip_sdk": ("usclip_data", "usclip_train", "torch", "torchvision", "open_clip"),
    ROOT / "python" / "usclip_data": ("usclip_train", "torch", "torchvision", "open_clip"),
}


def _imports(path: Path):
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield node.lineno, a.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module


@pytest.mark.parametrize("package", list(RULES), ids=lambda p: p.name)
def test_packages_import_only_what_they_may(package):
    banned = RULES[package]
    bad = [f"{p.relative_to(ROOT)}:{line}: imports {name}"
           for p in sorted(package.rglob("*.py"))
           for line, name in _imports(p) if name.split(".")[0] in banned]
    assert not bad, "\n".join(bad)


def test_the_sdk_cli_names_no_other_package():
    # Training and data commands come through the usclip.commands entry points.
    text = (ROOT / "python" / "usclip_sdk" / "cli" / "__init__.py").read_text()
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith(("#", "``")))
    assert "importlib.import_module(\"usclip_train" not in code
    assert "entry_points(group=\"usclip.commands\")" in code


def test_version_is_one_number():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+ (the 3.10 CI step skips this; 3.11 runs it)

    import usclip_sdk
    from usclip_sdk import ops

    want = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert usclip_sdk.__version__ == ops.build_info()["version"] == want


def test_data_and_training_commands_are_registered_through_entry_points():
    from importlib.metadata import entry_points

    names = {e.name: e.value for e in entry_points(group="usclip.commands")}
    assert names.get("synth") == "usclip_data.cli.synth"
    assert {"train", "eval", "export"} <= set(names)
