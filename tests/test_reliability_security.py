"""Loading what other people send must not run code or touch files it should not:

- checkpoints load through safetensors + JSON only: a pickle where the weights
  should be (or beside them) is refused, and its payload never runs;
- no ``torch.load`` without ``weights_only=True``, and no other unpickling call,
  anywhere in ``augment/`` or ``recognition/`` (a source scan);
- export refuses manifest rows that leave the manifest root unless told to;
- the HTML report escapes every string that comes from data.

Export's function-level containment test is test_export.py::
test_export_refuses_paths_that_escape_the_root; this file adds every format
through the CLI and the explicit opt-in.
"""

from __future__ import annotations

import ast
import builtins
import json
import pickle
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from augment import checkpoint as ckpt
from augment import manifest as mf
from augment.cli import cli
from augment.config import PipelineConfig
from augment.report import build

REPO = Path(__file__).resolve().parents[1]


class _Payload:
    """Unpickling this creates ``path``: proof that code ran."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (builtins.open, (self.path, "w"))


def _pickle_checkpoint(folder: Path, marker: Path, as_name: str) -> Path:
    """A folder that looks like a complete checkpoint but carries a pickle."""
    folder.mkdir(parents=True)
    (folder / ckpt.META).write_text(json.dumps({
        "format_version": ckpt.FORMAT_VERSION, "complete": True, "step": 99, "kind": "recognizer",
        "structure": {"net": {"__tensor__": "net.weight"}},
    }))
    if as_name.endswith(".pt"):
        torch.save({"net.weight": _Payload(marker)}, folder / as_name)  # torch's zip-of-pickle format
    else:
        (folder / as_name).write_bytes(pickle.dumps({"net.weight": _Payload(marker)}))
    return folder


@pytest.mark.parametrize("as_name", ["weights.safetensors", "model.pt", "weights.pkl"])
def test_a_checkpoint_carrying_a_pickle_is_refused_and_never_unpickled(tmp_path, as_name):
    marker = tmp_path / "pwned"
    folder = _pickle_checkpoint(tmp_path / "ckpts" / "step_99", marker, as_name)
    with pytest.raises(ckpt.CheckpointError, match="weights.safetensors"):
        ckpt.load(folder)
    assert ckpt.latest(tmp_path / "ckpts") is None  # never picked up for a resume
    from augment.sagan.generators import load_generator
    from recognition.embed import load_recognizer

    for loader in (load_generator, load_recognizer):
        with pytest.raises(ckpt.CheckpointError):
            loader(folder)
    assert not marker.exists(), "a pickle payload ran"


def test_pretrained_backbone_weights_are_read_with_weights_only(tmp_path):
    from recognition.backbones import BackboneError, load_pretrained

    marker = tmp_path / "pwned"
    bad = tmp_path / "backbone.pt"
    torch.save({"net.weight": _Payload(marker)}, bad)
    with pytest.raises(BackboneError, match="not a weights file torch can read safely"):
        load_pretrained(torch.nn.Linear(2, 2), bad)
    assert not marker.exists(), "a pickle payload ran"


# --------------------------------------------------------------------------- #
# Source scan: no unpickling call anywhere in the packages
# --------------------------------------------------------------------------- #

FORBIDDEN = {
    ("pickle", "load"), ("pickle", "loads"), ("cPickle", "load"), ("dill", "load"), ("dill", "loads"),
    ("joblib", "load"), ("pd", "read_pickle"), ("pandas", "read_pickle"), ("marshal", "loads"),
    ("shelve", "open"), ("jit", "load"), ("yaml", "load"), ("yaml", "unsafe_load"), ("yaml", "full_load"),
}


def _kw(call: ast.Call, name: str):
    for k in call.keywords:
        if k.arg == name:
            return k.value
    return None


def unsafe_calls(source: str, filename: str = "<src>") -> list[str]:
    """Lines that could unpickle: torch.load without weights_only=True, np.load with
    allow_pickle=True, and the calls in FORBIDDEN."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        attr = node.func.attr
        owner = node.func.value
        owner_name = owner.id if isinstance(owner, ast.Name) else owner.attr if isinstance(owner, ast.Attribute) else ""
        where = f"{filename}:{node.lineno}"
        if owner_name == "torch" and attr == "load":
            wo = _kw(node, "weights_only")
            if not (isinstance(wo, ast.Constant) and wo.value is True):
                found.append(f"{where}: torch.load without weights_only=True")
        elif owner_name in ("np", "numpy") and attr == "load":
            ap = _kw(node, "allow_pickle")
            if ap is not None and not (isinstance(ap, ast.Constant) and ap.value is False):
                found.append(f"{where}: np.load with allow_pickle")
        elif (owner_name, attr) in FORBIDDEN:
            found.append(f"{where}: {owner_name}.{attr}")
    return found


def test_the_scan_finds_what_it_looks_for():
    bad = ("import torch, pickle, yaml, numpy as np\ntorch.load(p)\ntorch.load(p, weights_only=False)\n"
           "pickle.loads(b)\nyaml.load(s)\nnp.load(p, allow_pickle=True)\ntorch.jit.load(p)\n")
    assert len(unsafe_calls(bad)) == 6
    good = "import torch, yaml\ntorch.load(p, map_location='cpu', weights_only=True)\nyaml.safe_load(s)\n"
    assert unsafe_calls(good) == []


def test_no_unpickling_call_in_the_packages():
    files = sorted([*(REPO / "augment").rglob("*.py"), *(REPO / "recognition").rglob("*.py")])
    assert len(files) > 20
    found = [hit for f in files for hit in unsafe_calls(f.read_text(encoding="utf-8"), str(f.relative_to(REPO)))]
    assert found == []


# --------------------------------------------------------------------------- #
# Export: containment through the CLI, every format
# --------------------------------------------------------------------------- #


def _manifest_with(tmp_path: Path, bad_path: str) -> Path:
    root = tmp_path / "run"
    (root / "img").mkdir(parents=True)
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(root / "img" / "ok.png")
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "outside.png")  # a file that does exist
    rows = [{"sample_id": mf.sample_id("t", p), "path": p, "identity": k, "split": "train", "source": "t"}
            for k, p in enumerate(["img/ok.png", bad_path])]
    return mf.write(mf.Manifest("images", mf.frame("images", rows), root), root / "m.parquet")


@pytest.mark.parametrize("fmt", ["imagefolder", "lst", "csv"])
@pytest.mark.parametrize("bad", ["../outside.png", "img/../../outside.png", "ABSOLUTE"])
def test_export_refuses_rows_outside_the_root_in_every_format(tmp_path, fmt, bad):
    bad = str(tmp_path / "outside.png") if bad == "ABSOLUTE" else bad
    path = _manifest_with(tmp_path, bad)
    out = tmp_path / "out"
    r = CliRunner().invoke(cli, ["export", str(path), "--format", fmt, "--out", str(out)])
    assert r.exit_code == 1, r.output
    assert "escapes the manifest root" in r.output and "row 1" in r.output and "--allow-outside-root" in r.output
    assert not out.exists() or not any(out.rglob("*"))  # nothing written


def test_export_outside_the_root_only_when_allowed(tmp_path):
    path = _manifest_with(tmp_path, "../outside.png")
    out = tmp_path / "out"
    r = CliRunner().invoke(cli, ["export", str(path), "--format", "imagefolder", "--out", str(out),
                                 "--allow-outside-root"])
    assert r.exit_code == 0, r.output
    assert len(list(out.rglob("*.png"))) == 2


# --------------------------------------------------------------------------- #
# The HTML report: data stays text
# --------------------------------------------------------------------------- #

XSS = "<script>alert(1)</script>"
IMG = '<img src=x onerror="alert(2)">'


def test_report_escapes_every_string_from_data(tmp_path):
    cfg = replace(PipelineConfig(), name=XSS, workdir=str(tmp_path / "work"))
    run_dir = tmp_path / "work" / "report"
    run_dir.mkdir(parents=True)
    rows = [{"sample_id": "a", "path": "a.png", "identity": 1, "identity_name": XSS, "split": "train",
             "source": "t"}]
    rejects = mf.frame("rejects", [{"sample_id": "b", "path": f"{XSS}.jpg", "reason": XSS, "detail": IMG}])
    rec = tmp_path / "recognition.json"
    rec.write_text(json.dumps({
        "models": {XSS: {"accuracy_mean": 0.9, "accuracy_std": 0.01, "tar_at_far": {"0.01": 0.5}},
                   IMG: {"accuracy_mean": 0.8, "accuracy_std": 0.02, "tar_at_far": {}}},
        "deltas": {IMG: {"accuracy": {"delta": 0.1, "p_value": 0.5}}},
        "paper": {XSS: {IMG: 0.5}},
    }))
    sagan = tmp_path / "sagan.json"
    sagan.write_text(json.dumps({XSS: {"edit_success": 0.7}, IMG: {"mask_iou": 0.2}}))
    inputs = {"source": mf.Manifest("images", mf.frame("images", rows), tmp_path),
              "rejects": mf.Manifest("rejects", rejects, tmp_path),
              "recognition_metrics": rec, "sagan_metrics": sagan}
    grid = Image.fromarray(np.zeros((4, 4, 3), np.uint8))
    doc = build(cfg, inputs, run_dir, grids={XSS: grid, "../../escaped": grid})
    html = doc.render_html()
    assert "<script" not in html.lower() and "<img src=x" not in html
    assert html.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 5  # title, config, reasons, models, attributes
    assert "&lt;img src=x onerror=&quot;alert(2)&quot;&gt;" in html
    written = {p.name for p in tmp_path.rglob("grid_*.png")}
    assert written and all(p.parent == run_dir for p in tmp_path.rglob("grid_*.png")), written
