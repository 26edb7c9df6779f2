"""Untrusted inputs, fuzzed: whatever a received file or a name option holds, no
command writes, changes or removes anything outside its output folder.

Manifests, label maps, pairs files, CSV files and generator checkpoints travel
between people (docs/RELIABILITY.md, "Untrusted inputs"). Each property below
builds a tiny valid fixture in a sandbox, replaces ONE value (a manifest cell,
a label-map or CSV cell, a pairs-file field, a name option) by a value drawn
by hypothesis, random or hostile (``../../escaped``, an absolute path into the
sandbox, ``..``, NUL, line breaks, ANSI escapes, bidi overrides, 5000 and
200000 characters, bytes that are not UTF-8, extreme numbers, NaN,
wrong-length lists...), runs the commands that read it, and checks:

- the outcome: exit 0, or exit 1 / 2 with ONE ``Error:`` line (no traceback)
  naming the file at fault (and its row or line when the value sits in one;
  the flag for an option);
- containment: a snapshot of the sandbox (every file's bytes, every folder,
  every link), all but the command's declared output folder, is the same
  after the command: nothing created, changed or removed. Inputs sit six
  folders deep, so that ``../`` chains land inside the snapshot, and the
  process runs in a sandbox folder, so that a stray relative write does too.

Two layers. ``checked``: the commands as a user runs them, manifest checks on
read included. ``writers``: the manifest name check (``manifest._check_names``)
switched off and, for ``augment edit``, the command-line check bypassed (the
Python API called), so that every writer's own ``augment.names.component``
guard is exercised alone (a guard removed from one join makes this layer
fail; see docs/RELIABILITY.md).

Size and time: ``EXAMPLES`` (40) per property, plus explicit ``@example``s
that run every time (the issue's two attacks among them); the file takes
about 15 s on a 2-core CPU (fast tier). ``AUGMENT_FUZZ_EXAMPLES=N`` runs N
per property instead; ``--hypothesis-show-statistics`` shows how often each
command ran through or refused.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import math
import os
import re
import stat
import traceback
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, currently_in_test_context, event, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from augment import manifest as mf
from augment import names
from augment.cli import cli

EXAMPLES = int(os.environ.get("AUGMENT_FUZZ_EXAMPLES", "40"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# --------------------------------------------------------------------------- #
# Hostile values
# --------------------------------------------------------------------------- #

ABS = "@ABS@"  # replaced by an absolute path inside the sandbox (unknown when the strategies are built)

ATTACKS = [
    "../../escaped", "../../../../escaped", "a/../../escaped", "./../escaped", "..", ".", "", "/", "//",
    f"{ABS}/escaped", ABS, "..\\..\\escaped", "C:\\escaped", "nul\x00byte", "line\nbreak", "cr\r", "\x1b[2J",
    "\u202egnp.exe", "zero\u200bwidth", "\u2028", ".hidden", "~", "~/escaped", "-rf", "*", "?", "con",
    "a" * 255, "é" * 150, "x" * 5000, " ", "%2e%2e%2fescaped", "\t", "a:b", "labels.csv", "property",
    "file:///escaped", "ok_name", "Eyeglasses", "y" * 200_000,  # (over the csv module's field limit)
]
# Climbs out of a folder, alone or appended to a prefix the writer adds
# ("mask/<photo>.<attribute>.png" needs the leading "/" to leave "mask/"); at
# most 7 levels, so that from any output folder it lands inside the sandbox
# (outputs sit 7 folders below it), where the snapshot sees it.
TRAVERSAL = st.builds(lambda lead, k, tail: lead + "../" * k + tail, st.sampled_from(["", "/", "./", "x/", ABS + "/"]),
                      st.integers(1, 7), st.sampled_from(["escaped", "", ABS]))
HOSTILE = st.one_of(
    st.sampled_from(ATTACKS),
    TRAVERSAL,
    st.text(max_size=24),
    st.text(alphabet="./\\\x00aé:~ \n", max_size=16),
    st.lists(st.sampled_from(["..", ".", "a", "", ABS]), min_size=1, max_size=6).map("/".join),
)
FLOATS = st.one_of(st.sampled_from([math.nan, math.inf, -math.inf, 3.4e38, -0.0, 0.5, -1.0]),
                   st.floats(width=32))
BIG_INTS = st.one_of(st.sampled_from([0, -1, 2**31, 2**63 - 1, -(2**63)]), st.integers(-(2**63), 2**63 - 1))
# A field of a text file: any text, a number, or bytes that are not UTF-8 (the
# lone surrogate is written as the byte 0xff: ``errors="surrogateescape"``).
FIELD = st.one_of(HOSTILE, BIG_INTS.map(str), st.just("bad\udcffbyte"))
# A command-line argument: never a NUL (argv cannot carry one), but bytes that are
# not UTF-8 arrive as lone surrogates (Python's surrogateescape).
ARG_TEXT = HOSTILE.map(lambda s: s.replace("\x00", ""))
ARGUMENT = st.one_of(ARG_TEXT, st.just("bad\udcffbyte"))


def column_values(field: pa.Field) -> st.SearchStrategy:
    """Random and hostile values of a manifest column's own type (and null)."""
    t = field.type
    if pa.types.is_string(t):
        values = HOSTILE
    elif pa.types.is_integer(t):
        info = np.iinfo(t.to_pandas_dtype())
        values = st.one_of(st.sampled_from([int(info.min), int(info.max), 0, -1]), st.integers(info.min, info.max))
    elif pa.types.is_floating(t):
        values = FLOATS
    elif pa.types.is_boolean(t):
        values = st.booleans()
    elif pa.types.is_integer(t.value_type):
        values = st.lists(st.integers(-128, 127), max_size=45)
    elif pa.types.is_string(t.value_type):
        values = st.lists(HOSTILE, max_size=3)
    else:
        values = st.lists(FLOATS, max_size=12)
    return st.one_of(values, st.none())


# --------------------------------------------------------------------------- #
# The sandbox and its snapshot
# --------------------------------------------------------------------------- #


class Box:
    """A sandbox: inputs under ``in/`` six folders deep, outputs beside them."""

    def __init__(self, base: Path):
        self.base = base
        self.deep = base.joinpath(*(f"d{i}" for i in range(6)))
        self.inp = self.deep / "in"
        self.cwd = self.deep / "cwd"
        self.inp.mkdir(parents=True)
        self.cwd.mkdir()

    def out(self, name: str) -> Path:
        return self.deep / f"out_{name}"

    def real(self, value):
        """``value`` with the absolute-path token made real (inside the sandbox)."""
        if isinstance(value, str):
            return value.replace(ABS, str(self.base / "abs"))
        if isinstance(value, list):
            return [self.real(v) for v in value]
        return value


@contextlib.contextmanager
def _working_in(folder: Path):
    """The process's working folder set to ``folder`` for a while (contextlib.chdir needs 3.11)."""
    before = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


def snapshot(base: Path, allowed: Path) -> dict[str, tuple]:
    """Every entry under ``base`` but ``allowed`` (and what is below it): kind and,
    for a file, size, mtime and sha256; for a link, its target."""
    seen: dict[str, tuple] = {}
    for folder, dirs, files in os.walk(base):
        here = Path(folder)
        dirs[:] = [d for d in dirs if here / d != allowed]
        for n in dirs + files:
            p = here / n
            if p == allowed:
                continue
            st_ = p.lstat()
            key = p.relative_to(base).as_posix()
            if stat.S_ISLNK(st_.st_mode):
                seen[key] = ("link", os.readlink(p))
            elif stat.S_ISDIR(st_.st_mode):
                seen[key] = ("dir",)
            else:
                seen[key] = ("file", st_.st_size, st_.st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
    return seen


def assert_contained(before: dict, after: dict, what: str) -> None:
    created = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    assert not (created or removed or changed), (
        f"{what} touched the sandbox outside its output folder: created {created[:5]}, removed {removed[:5]}, "
        f"changed {changed[:5]}")


def assert_one_line_error(output: str, code: int, blame: list[str], where: bool, what: str) -> None:
    """A failed command's output: one ``Error:`` line, last, naming one of ``blame``
    (files, flags); with ``where``, also its row or line."""
    assert code in (1, 2), f"{what}: exit {code}\n{output}"
    assert "Traceback" not in output, f"{what}: traceback\n{output}"
    lines = output.rstrip("\n").split("\n")
    errors = [ln for ln in lines if ln.startswith("Error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], f"{what}: not one error line at the end:\n{output}"
    message = errors[0]
    assert any(b in message for b in blame), f"{what}: the error names none of {blame}: {message}"
    if where:  # "<file>: row N: ..." (a manifest) or "<file>:N: ..." (a text file's line)
        assert re.search(r" row \d|:\d+:", message), f"{what}: no row or line: {message}"


def run_cli(box: Box, args: list, out: Path, blame: list[str], where: bool = True):
    """Run ``augment ARGS`` in the sandbox; check containment and the outcome."""
    before = snapshot(box.base, out)
    with _working_in(box.cwd):
        r = CliRunner().invoke(cli, [str(a) for a in args])
    assert_contained(before, snapshot(box.base, out), f"augment {args[0]}")
    if currently_in_test_context():  # --hypothesis-show-statistics: how often each command ran through
        event(f"augment {args[0]}: exit {r.exit_code}")
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise AssertionError(f"augment {args[0]} crashed:\n"
                             + "".join(traceback.format_exception(r.exception)) + r.output)
    if r.exit_code != 0:
        assert_one_line_error(r.output, r.exit_code, blame, where, f"augment {' '.join(map(str, args))[:300]}")
    return r


def run_api(box: Box, out: Path, what: str, call):
    """Call ``call()`` in the sandbox; it succeeds or raises one of the project's errors
    or an OSError (a name too long for the filesystem), which the CLI prints as one line,
    its control characters escaped (``cli._fail``);
    containment is checked either way."""
    from augment.checkpoint import CheckpointError
    from augment.config import ConfigError
    from augment.data.errors import DatasetError
    from augment.export import ExportError

    before = snapshot(box.base, out)
    try:
        with _working_in(box.cwd):
            call()
        event(f"{what}: done")
    except (DatasetError, mf.ManifestError, ExportError, ConfigError, CheckpointError, OSError) as e:
        event(f"{what}: {type(e).__name__}")  # a refusal: what matters here is that nothing left ``out``
    finally:
        assert_contained(before, snapshot(box.base, out), what)


@pytest.fixture(params=["checked", "writers"])
def layer(request, monkeypatch):
    """``writers``: the manifest name check off, so that the writers' own guards are what is tested."""
    if request.param == "writers":
        monkeypatch.setattr(mf, "_check_names", lambda *a, **k: None)
    return request.param


# --------------------------------------------------------------------------- #
# Fixtures: a tiny images manifest, label map, pairs file, CSV files
# --------------------------------------------------------------------------- #


def _png(path: Path, seed: int, size: int = 8) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size, 3), 40 * seed % 256, np.uint8)).save(path)


def _image_rows(box: Box) -> list[dict]:
    """Three rows, two identities, one an edit of another; images under in/img/."""
    rows = []
    for k in range(3):
        rel = f"img/{k}.png"
        _png(box.inp / rel, k)
        rows.append({"sample_id": mf.sample_id("t", rel), "path": rel, "identity": 100 + k // 2,
                     "identity_name": f"p{k // 2}", "split": "train", "source": "t", "width": 8, "height": 8,
                     "landmarks": [float(v) for v in range(10)], "bbox": [0.0, 0.0, 8.0, 8.0],
                     "transform": [1.0, 0.0, 0.0, 0.0, 1.0, 0.0], "attributes": [1] * 40, "det_prob": 0.99})
    rows[2].update(source="sagan", parent_id=rows[0]["sample_id"], attribute="Eyeglasses", target_value=1,
                   generator_id="0123456789abcdef", attr_prob=0.9, id_similarity=0.8, mask_area=0.1)
    return rows


def write_raw(kind: str, rows: list[dict], path: Path) -> Path:
    """A manifest as anyone could write one: the kind's column types, any values
    (nulls too), augment's metadata; no validation."""
    schema = pa.schema([f.with_nullable(True) for f in mf.SCHEMAS[kind]])
    table = pa.Table.from_pydict({f.name: [r.get(f.name) for r in rows] for f in schema}, schema=schema)
    meta = {"augment.schema_version": mf.SCHEMA_VERSION, "augment.kind": kind, "augment.root": "."}
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table.replace_schema_metadata(meta), path)
    return path


def write_csv(path: Path, rows: list[list[str]], raw: bool) -> Path:
    """Rows as CSV: quoted by the csv module, or ``raw`` (joined with commas:
    a hostile line break or quote then breaks the structure too)."""
    if raw:
        path.write_text("".join(",".join(r) + "\n" for r in rows), encoding="utf-8", errors="surrogateescape")
    else:
        buf = io.StringIO()
        csv.writer(buf).writerows(rows)
        path.write_text(buf.getvalue(), encoding="utf-8", errors="surrogateescape")
    return path


# --------------------------------------------------------------------------- #
# Manifests: every column, through inspect, export (every format) and align
# --------------------------------------------------------------------------- #

IMAGE_COLUMNS = mf.IMAGES.names


CELLS = st.sampled_from(IMAGE_COLUMNS).flatmap(
    lambda c: st.tuples(st.just(c), column_values(mf.IMAGES.field(c))))  # (column, a value of its type)


@FUZZ
@given(cell=CELLS, row=st.integers(0, 2))
@example(cell=("sample_id", "../../escaped"), row=1)  # the first attack, every run
@example(cell=("attribute", "/../../../escaped"), row=2)
@example(cell=("identity_name", "labels.csv"), row=0)  # becomes a class folder
def test_any_manifest_value_writes_nothing_outside_the_output(tmp_path_factory, layer, cell, row):
    """Any value in any column of an images manifest: inspect, export (every format), align."""
    box = Box(tmp_path_factory.mktemp("fuzz"))
    rows = _image_rows(box)
    column, value = cell
    rows[row][column] = box.real(value)
    m = write_raw("images", rows, box.inp / "m.parquet")
    # checked: the error names the manifest (or its image folder); writers: or it is
    # the refusal of a writer's own guard, which knows the value, not always the file
    blame = [str(m), str(box.inp)] + ([] if layer == "checked" else ["cannot be a file name"])
    if layer == "checked":
        run_cli(box, ["inspect", m], box.out("none"), blame)
    for fmt in ("imagefolder", "lst", "insightface", "csv"):
        out = box.out(fmt)
        run_cli(box, ["export", m, "--format", fmt, "--out", out], out, blame, where=False)
    out = box.out("align")
    run_cli(box, ["align", m, "--mode", "none", "--size", "16", "--workers", "1", "--out", out], out, blame,
            where=False)


def test_the_two_reported_attacks_exit_non_zero_naming_the_row(tmp_path):
    """The issue's two attacks: a sample_id '../../escaped' and a label map folder
    '../../labelescape', each via `augment export --format imagefolder`."""
    box = Box(tmp_path)
    rows = _image_rows(box)
    rows[1]["sample_id"] = "../../escaped"
    m = write_raw("images", rows, box.inp / "m.parquet")
    out = box.out("if")
    r = run_cli(box, ["export", m, "--format", "imagefolder", "--out", out], out, [str(m)])
    assert r.exit_code == 1 and f"{m}: row 1: sample_id '../../escaped'" in r.output, r.output
    assert not out.exists()

    good = write_raw("images", _image_rows(box), box.inp / "good.parquet")
    labels = write_csv(box.inp / "labels.csv", [["label", "identity", "identity_name", "folder"],
                                                 ["0", "100", "p0", "../../labelescape"], ["1", "101", "p1", "p1"]],
                       raw=False)
    r = run_cli(box, ["export", good, "--format", "imagefolder", "--out", out, "--labels", labels], out,
                [str(labels)])
    assert r.exit_code == 2 and f"{labels}:2: folder '../../labelescape'" in r.output, r.output
    assert not out.exists()


@pytest.mark.parametrize("column,value,message", [
    ("sample_id", "0123456789ABCDEF", "not a sample id of the form augment writes"),
    ("sample_id", "0123456789abcde", "not a sample id of the form augment writes"),
    ("parent_id", "../x", "not a sample id of the form augment writes"),
    ("attribute", "..", "cannot be a file name: a relative folder reference"),
    ("attribute", "a\\b", "cannot be a file name: contains a path separator"),
    ("attribute", "x" * 201, "cannot be a file name: 201 bytes long"),
])
def test_manifest_read_refuses_names_the_tool_never_writes(tmp_path, column, value, message):
    """Sample ids of another form and attributes that are no file name are refused on read, naming file, row, column."""
    box = Box(tmp_path)
    rows = _image_rows(box)
    rows[2][column] = value
    path = write_raw("images", rows, box.inp / "m.parquet")
    with pytest.raises(mf.ManifestError, match=f"^{re.escape(str(path))}: row 2: {column} .*{message}"):
        mf.read(path)
    rows[2][column] = None if column != "sample_id" else mf.sample_id("t", "img/2.png")
    assert len(mf.read(write_raw("images", rows, box.inp / "ok.parquet"))) == 3  # nulls pass where allowed


@pytest.mark.parametrize("kind,row", [
    ("rejects", {"sample_id": "../../x", "path": "a.png", "reason": "no_face"}),
    ("generators", {"attribute": "../../x", "path": "g", "generator_id": "a", "step": 1, "preset": "fast",
                    "image_size": 16}),
    ("groundtruth", {"image": "a.png", "attribute": "/x", "counterfactual": "c.png", "mask": "m.png"}),
])
def test_every_kind_with_a_name_column_is_checked_on_read(tmp_path, kind, row):
    """Rejects, generators and groundtruth manifests are checked on read too."""
    path = write_raw(kind, [row], tmp_path / f"{kind}.parquet")
    with pytest.raises(mf.ManifestError, match=f"^{re.escape(str(path))}: row 0: "):
        mf.read(path)


# --------------------------------------------------------------------------- #
# Label maps: every column, through export
# --------------------------------------------------------------------------- #

LABEL_HEADER = ("label", "identity", "identity_name", "folder")


@FUZZ
@given(cell=st.one_of(st.tuples(st.integers(1, 2), st.just(3)),  # the folder column half the time
                     st.tuples(st.integers(0, 2), st.integers(0, 3))), value=FIELD, raw=st.booleans(),
       fmt=st.sampled_from(["imagefolder", "lst", "insightface", "csv"]))
@example(cell=(1, 3), value="../../labelescape", raw=False, fmt="imagefolder")  # the second attack
@example(cell=(2, 2), value="y" * 200_000, raw=False, fmt="lst")
@example(cell=(1, 3), value="labels.csv", raw=False, fmt="imagefolder")  # a class folder over the export's own file
def test_any_label_map_value_writes_nothing_outside_the_output(tmp_path_factory, cell, value, raw, fmt):
    """Any cell of a label map given with --labels (header included), quoted or raw, in every format."""
    box = Box(tmp_path_factory.mktemp("fuzz"))
    m = write_raw("images", _image_rows(box), box.inp / "m.parquet")
    table = [list(LABEL_HEADER), ["0", "100", "p0", "p0"], ["1", "101", "p1", "p1"]]  # a copy: cells change
    table[cell[0]][cell[1]] = box.real(value)
    labels = write_csv(box.inp / "labels.csv", table, raw)
    out = box.out(fmt)
    run_cli(box, ["export", m, "--format", fmt, "--out", out, "--labels", labels], out, [str(labels)],
            where=False)  # (an identity changed in the map: the error names the manifest's, not a line)


# --------------------------------------------------------------------------- #
# Pairs files: every field, through evaluate and the read stage
# --------------------------------------------------------------------------- #

PEOPLE = ["Ann_A", "Bob_B", "Cyd_C"]


def _lfw(box: Box) -> tuple[Path, Path]:
    """An LFW tree (3 people x 2 photos) and embeddings of every photo."""
    root = box.inp / "lfw"
    paths = []
    for k, person in enumerate(PEOPLE):
        for i in (1, 2):
            rel = f"{person}/{person}_{i:04d}.jpg"
            _png(root / rel, k + i, size=16)
            paths.append(rel)
    emb = np.random.default_rng(0).normal(size=(len(paths), 8)).astype(np.float32)
    table = pa.table({"path": paths, "embedding": list(emb)})
    pq.write_table(table, box.inp / "emb.parquet")
    return root, box.inp / "emb.parquet"


def _pipeline(box: Box, out: Path, data: str) -> Path:
    """A pipeline YAML running the read stage alone on ``data`` (its ``data:`` section) into ``out``."""
    p = box.inp / "read.yaml"
    p.write_text(f"name: fuzz\nworkdir: '{out}'\ndevice: cpu\nstages: [read]\ndata:\n{data}", encoding="utf-8")
    return p


@FUZZ
@given(field=st.tuples(st.integers(0, 4), st.integers(0, 3)), value=FIELD)
def test_any_pairs_file_value_writes_nothing_outside_the_output(tmp_path_factory, field, value):
    """Any field of an LFW View-2 pairs file (or one more): evaluate, the read stage, datasets describe."""
    box = Box(tmp_path_factory.mktemp("fuzz"))
    root, emb = _lfw(box)
    lines = [["2", "1"], ["Ann_A", "1", "2"], ["Ann_A", "1", "Bob_B", "2"], ["Cyd_C", "1", "2"],
             ["Bob_B", "1", "Cyd_C", "2"]]
    line = lines[field[0]]
    if field[1] < len(line):
        line[field[1]] = box.real(value)
    else:
        line.append(box.real(value))
    pairs = box.inp / "pairs.txt"
    pairs.write_text("".join("\t".join(ln) + "\n" for ln in lines), encoding="utf-8", errors="surrogateescape")
    out = box.out("evaluate")
    run_cli(box, ["evaluate", "--baseline", emb, "--pairs", pairs, "--out", out, "--bootstrap", "0"], out,
            [str(pairs), str(emb)], where=False)
    out = box.out("read")
    yaml = _pipeline(box, out, f"  train: {{format: folder, root: '{root}'}}\n"
                               f"  eval: {{format: lfw, root: '{root}', pairs: '{pairs}'}}\n")
    run_cli(box, ["run", yaml], out, [str(pairs), str(root)], where=False)
    run_cli(box, ["datasets", "describe", "lfw", root, "--pairs", pairs], box.out("none"),
            [str(pairs), str(root)], where=False)


# --------------------------------------------------------------------------- #
# Identity and attribute CSV files: every field, through read and pairs
# --------------------------------------------------------------------------- #


@FUZZ
@given(cell=st.tuples(st.integers(0, 3), st.integers(0, 1)), value=FIELD, raw=st.booleans())
@example(cell=(1, 0), value="y" * 200_000, raw=False)  # a field over the csv module's limit
def test_any_identity_csv_value_writes_nothing_outside_the_output(tmp_path_factory, cell, value, raw):
    """Any cell of a folder dataset's identities CSV: datasets describe, the read stage."""
    box = Box(tmp_path_factory.mktemp("fuzz"))
    root = box.inp / "photos"
    for k in range(3):
        _png(root / f"{k}.png", k, size=16)
    table = [["path", "identity"], ["0.png", "7"], ["1.png", "7"], ["2.png", "Zed"]]
    table[cell[0]][cell[1]] = box.real(value)
    ids = write_csv(box.inp / "ids.csv", table, raw)
    run_cli(box, ["datasets", "describe", "folder", root, "--identities", ids], box.out("none"), [str(ids)],
            where=False)
    out = box.out("read")
    yaml = _pipeline(box, out, f"  train: {{format: folder, root: '{root}', identities: '{ids}'}}\n")
    run_cli(box, ["run", yaml], out, [str(ids)], where=False)


@FUZZ
@given(cell=st.tuples(st.integers(0, 4), st.integers(0, 2)), value=FIELD, raw=st.booleans())
@example(cell=(1, 0), value="y" * 200_000, raw=False)
def test_any_attribute_csv_value_writes_nothing_outside_the_output(tmp_path_factory, cell, value, raw):
    """Any cell of an attribute CSV (image,attribute,value): augment pairs --attributes-from."""
    box = Box(tmp_path_factory.mktemp("fuzz"))
    root, _ = _lfw(box)
    table = [["image", "attribute", "value"]]
    table += [[f"{p}/{p}_{i:04d}.jpg", "Eyeglasses", str(i - 1)] for p in PEOPLE[:2] for i in (1, 2)]
    table[cell[0]][cell[1]] = box.real(value)
    attrs = write_csv(box.inp / "attrs.csv", table, raw)
    out = box.out("pairs")
    run_cli(box, ["pairs", root, "--attribute", "Eyeglasses", "--attributes-from", attrs, "--folds", "1",
                  "--out", out / "pairs.txt"], out, [str(attrs)], where=False)


# --------------------------------------------------------------------------- #
# Name options on the command line
# --------------------------------------------------------------------------- #


@FUZZ
@given(value=ARGUMENT, fmt=st.sampled_from(["imagefolder", "lst", "insightface", "csv"]))
@example(value="../../escaped", fmt="lst")
def test_any_name_option_writes_nothing_outside_the_output(tmp_path_factory, value, fmt):
    """Any text as export --name, evaluate NAME=M (baseline and augmented) and pairs --attribute."""
    box = Box(tmp_path_factory.mktemp("fuzz"))
    value = box.real(value)
    m = write_raw("images", _image_rows(box), box.inp / "m.parquet")
    out = box.out("export")
    run_cli(box, ["export", m, "--format", fmt, "--out", out, "--name", value], out, ["--name"], where=False)
    _, emb = _lfw(box)
    pairs = box.inp / "pairs.txt"
    pairs.write_text("1\t1\nAnn_A\t1\t2\nAnn_A\t1\tBob_B\t2\n")
    out = box.out("evaluate")
    run_cli(box, ["evaluate", "--baseline", f"{value}={emb}", "--augmented", f"{value}x={emb}", "--pairs", pairs,
                  "--out", out, "--bootstrap", "0"], out, ["--baseline", "--augmented", str(emb)], where=False)
    out = box.out("pairs")
    run_cli(box, ["pairs", box.inp / "lfw", "--attribute", value, "--attributes-from", "dataset",
                  "--out", out / "p.txt"], out, ["attribute", str(box.inp / "lfw")], where=False)


# --------------------------------------------------------------------------- #
# Edit: photos with someone else's generator, and the edit stage
# --------------------------------------------------------------------------- #


@pytest.fixture
def fake_detector(monkeypatch):
    """MTCNN replaced by one fixed face per photo (the photo tests' stand-in)."""
    from augment import photo_edit
    from augment.align.detect import Face

    points = np.array([[50.0, 40.0], [74.0, 41.0], [62.0, 55.0], [53.0, 68.0], [72.0, 68.0]])
    monkeypatch.setattr(photo_edit.det, "detect",
                        lambda images, **kw: [[Face(np.array([40.0, 25.0, 85.0, 80.0]), points.copy(), 0.99)]
                                              for _ in images])


def _generator(box: Box, attribute: str, column: str | None, value) -> Path:
    """A generators manifest in in/gens/ and its checkpoint, whose meta names ``attribute``;
    ``column`` of the manifest row set to ``value``."""
    import json

    from tests.generator_files import save_generator

    folder = save_generator(box.inp / "gens" / "generator")
    meta = json.loads((folder / "meta.json").read_text())
    (folder / "meta.json").write_text(json.dumps({**meta, "attribute": attribute}))
    row = {"attribute": attribute, "path": "generator", "generator_id": "0123456789abcdef", "step": 1,
           "preset": "fast", "image_size": 16}
    if column is not None:
        row[column] = value
    return write_raw("generators", [row], box.inp / "gens" / "generators.parquet")


PHOTO_NAMES = st.one_of(st.sampled_from(["a", "..png", " ", "-x", "é" * 60, "x" * 190, "a.b.c", "~"]),
                        st.text(st.characters(blacklist_characters="/\x00", blacklist_categories=("Cs",)),
                                min_size=1, max_size=40))


@FUZZ
@given(attribute=st.one_of(st.just("Eyeglasses"), ARG_TEXT),
       column=st.sampled_from([None, "attribute", "path", "generator_id", "preset"]), value=HOSTILE,
       photo_name=PHOTO_NAMES)
@example(attribute="/../../../../escaped", column=None, value="", photo_name="a")  # leaves "mask/" and "edited/"
def test_any_edit_input_writes_nothing_outside_the_output(tmp_path_factory, layer, fake_detector, attribute, column,
                                                          value, photo_name):
    """augment edit with a received generator: any attribute (the checkpoint's, the manifest's and
    --attribute alike), any generators-manifest value, any photo file name."""
    from augment import photo_edit

    box = Box(tmp_path_factory.mktemp("fuzz"))
    attribute, value = box.real(attribute), box.real(value)
    gens = _generator(box, attribute, column, value)
    try:
        photo = box.inp / "photos" / f"{photo_name}.png"
        photo.parent.mkdir()
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (100, 120, 3), dtype=np.uint8)).save(photo)
    except (OSError, ValueError):  # a name this filesystem refuses (too long): a photo the user cannot have
        photo = box.inp / "photos" / "p.png"
        Image.fromarray(np.zeros((100, 120, 3), np.uint8)).save(photo)
    out = box.out("edit")
    if layer == "checked":
        run_cli(box, ["edit", photo, "--generators", gens, "--attribute", attribute, "--value", "1",
                      "--out", out, "--device", "cpu"], out, [str(gens.parent), "--attribute", str(photo.parent)],
                where=False)
    else:
        run_api(box, out, "edit_photos",
                lambda: photo_edit.edit_photos([photo], gens, attribute, "1", out, progress=False))


@FUZZ
@given(attribute=st.one_of(st.just("Eyeglasses"), HOSTILE), sample_id=HOSTILE)
def test_any_edit_stage_input_writes_nothing_outside_the_output(tmp_path_factory, attribute, sample_id):
    """The edit stage's writer, given a generator attribute and aligned rows no check has seen."""
    import torch

    from augment.config import EditConfig
    from augment.edit import EditModels, edit_rows
    from augment.sagan.model import SaGANGenerator
    from tests.sagan_fixtures import TINY

    box = Box(tmp_path_factory.mktemp("fuzz"))
    attribute, sample_id = box.real(attribute), box.real(sample_id)
    rows = _image_rows(box)
    rows[0]["sample_id"] = sample_id
    torch.manual_seed(0)
    models = EditModels(attribute, "0123456789abcdef", SaGANGenerator(TINY).eval(), TINY.image_size)
    out = box.out("edit")
    cfg = EditConfig(directions="add", batch_size=4, chunk_size=4, min_attr_prob=0.0)
    run_api(box, out, "edit_rows", lambda: edit_rows([models], mf.frame("images", rows), box.inp, out, cfg, "cpu"))


# --------------------------------------------------------------------------- #
# Each writer's guard alone, on a traversal (no read check in front of it)
# --------------------------------------------------------------------------- #


def _guarded_writes(tmp: Path) -> dict:
    """One call per writer whose file name comes from data, each given ``../../escaped``."""
    from augment import checkpoint as ckpt
    from augment.align.chunk import out_path
    from augment.edit import _part_path
    from augment.export import LabelMap, export_imagefolder

    import pandas as pd

    box = Box(tmp / "box")
    rows = _image_rows(box)
    rows[1]["sample_id"] = "../../escaped"
    df = mf.frame("images", rows).assign(abspath=[str(box.inp / r["path"]) for r in rows])
    df.index = pd.MultiIndex.from_tuples([(str(tmp / "m.parquet"), k) for k in range(3)], names=["manifest", "row"])
    labels = LabelMap({100: {"label": 0, "identity_name": "p0", "folder": "p0"},
                       101: {"label": 1, "identity_name": "p1", "folder": "p1"}})
    return {
        "checkpoint.save": lambda: ckpt.save(tmp / "out" / "a" / "..", {}, {}),
        "align out_path": lambda: out_path("train", "../../escaped", "png"),
        "edit parts": lambda: _part_path(tmp / "out", "../../escaped", 0),
        "export imagefolder": lambda: export_imagefolder(df, labels, tmp / "out", "m"),
    }


@pytest.mark.parametrize("writer", ["checkpoint.save", "align out_path", "edit parts", "export imagefolder"])
def test_each_writer_guard_refuses_a_traversal_by_itself(tmp_path, writer):
    (tmp_path / "out").mkdir()
    call = _guarded_writes(tmp_path)[writer]
    before = snapshot(tmp_path, tmp_path / "out")
    with pytest.raises(names.UnsafeName, match="cannot be a file name"):
        call()
    assert_contained(before, snapshot(tmp_path, tmp_path / "out"), writer)


# --------------------------------------------------------------------------- #
# The one place: augment.names
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("name,why", [
    ("", "empty"), (".", "relative folder"), ("..", "relative folder"), ("a/b", "separator"),
    ("/abs", "separator"), ("a\\b", "separator"), ("a\x00b", "U+0000"), ("a\nb", "U+000A"),
    ("\x1b[2J", "U+001B"), ("\u202eexe", "U+202E"), ("\u2028", "U+2028"), (".hidden", "hidden"),
    ("x" * 201, "201 bytes"), ("é" * 101, "202 bytes"), (None, "not a string"), (7, "not a string"),
])
def test_component_refuses_what_is_not_one_plain_name(name, why):
    assert why in names.problem(name)
    with pytest.raises(names.UnsafeName, match=f"^f.csv: row 3: .* cannot be a file name: .*{re.escape(why)}"):
        names.component(name, "f.csv: row 3:")


@pytest.mark.parametrize("name", ["Eyeglasses", "0123456789abcdef.png", "José Ñúñez", "a b", "-x", "x" * 200,
                                  "名前", "a..b", "+Eyeglasses:oracle", "p0"])
def test_component_keeps_plain_names_unchanged(name, tmp_path):
    assert names.component(name) == name
    assert names.child(tmp_path, name).parent == tmp_path


def test_error_messages_stay_one_short_line():
    with pytest.raises(names.UnsafeName) as e:
        names.component("\n" * 10_000 + "/")
    assert "\n" not in str(e.value) and len(str(e.value)) < 120
