"""Every read is bounded and typed (astrollama.untrusted): regular files only, a size cap per kind
of file, UTF-8 named by byte, symlinks kept inside the root a command was given, and paths named
inside a results file confined to its directory.

The rule is tested once on the reader itself (every kind of file, every bad shape), then through
the commands where a path comes from data rather than from the user: per-paper files under a
data root (``sft-convert --input qa=ROOT``, ``data qa``, ``data build``) and the plot a
``similarity.json`` names (``eval report --embed``).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from astrollama.data.manifest import Manifest, paper_path
from astrollama.errors import InputError
from astrollama.untrusted import LIMITS, check_file, read_bytes, read_json, read_text, safetensors_header
from tests.hostile.test_values import _base_trained, results_dir  # noqa: F401 - shared builders
from tests.hostile.walk import make_bad

PID = "2401.00101"


# ------------------------------------------------------------------------------- the reader


@pytest.mark.parametrize("kind", sorted(LIMITS))
@pytest.mark.parametrize("bad", ["missing", "directory", "fifo", "huge", "dev-zero"])
def test_every_kind_of_file_refuses_every_bad_shape_at_once(kind, bad, tmp_path):
    p = make_bad(bad, tmp_path)
    t0 = time.monotonic()
    with pytest.raises(InputError) as e:
        read_bytes(p, kind)
    assert time.monotonic() - t0 < 2
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(str(p))
    assert {
        "missing": "no such file",
        "directory": "is a directory",
        "fifo": "not a regular file",
        "huge": "over the",
        "dev-zero": "not a regular file",
    }[bad] in msg


def test_a_file_at_the_cap_is_read_and_one_byte_more_is_not(tmp_path, monkeypatch):
    monkeypatch.setitem(LIMITS, "config", 16)
    ok, big = tmp_path / "ok.json", tmp_path / "big.json"
    ok.write_bytes(b'{"a": "0123456"}')  # 16 bytes
    big.write_bytes(b'{"a": "01234567"}')
    assert read_json(ok) == {"a": "0123456"}
    with pytest.raises(InputError, match="17 bytes, over the 16 bytes limit for a config file"):
        read_json(big)


def test_text_must_be_utf8_and_json_holds_no_lone_surrogate(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine\n\xc3\x28")
    with pytest.raises(InputError, match=r"bad.txt: not UTF-8 text \(byte 5\)"):
        read_text(bad)
    sur = tmp_path / "sur.json"
    sur.write_text('{"messages": [{"content": "a \\udc80 b"}]}')
    with pytest.raises(InputError, match=r"messages\[0\].content: a lone surrogate \(U\+DC80\)"):
        read_json(sur)
    pair = tmp_path / "pair.json"
    pair.write_text('{"s": "\\ud83d\\ude00"}')  # a valid surrogate pair is one character
    assert read_json(pair) == {"s": "\U0001f600"}


def test_a_symlink_may_not_leave_its_root(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "host.txt").write_text("host secret")
    (root / "inside.txt").write_text("ok")
    (root / "out.txt").symlink_to(tmp_path / "host.txt")
    (root / "in.txt").symlink_to(root / "inside.txt")
    assert read_text(root / "in.txt", root=root) == "ok"
    with pytest.raises(InputError, match="leads outside"):
        read_text(root / "out.txt", root=root)
    with pytest.raises(InputError, match="leads outside"):
        check_file("../host.txt", "text", root=root)


def _safetensors(path: Path, header: dict, data: bytes) -> Path:
    raw = json.dumps(header).encode()
    path.write_bytes(len(raw).to_bytes(8, "little") + raw + data)
    return path


def test_safetensors_headers_are_checked_against_the_file(tmp_path):
    good = {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}
    assert safetensors_header(_safetensors(tmp_path / "ok.safetensors", good, b"\0" * 8)) == good
    with pytest.raises(InputError, match="ends at byte 8 of the data, the file holds 4"):
        safetensors_header(_safetensors(tmp_path / "cut.safetensors", good, b"\0" * 4))
    huge = tmp_path / "len.safetensors"
    huge.write_bytes((2**40).to_bytes(8, "little") + b"{}")
    with pytest.raises(InputError, match="header length"):
        safetensors_header(huge)
    with pytest.raises(InputError, match="too short"):
        safetensors_header(_write(tmp_path / "short.safetensors", b"\x01\x02"))


def _write(p: Path, data: bytes) -> Path:
    p.write_bytes(data)
    return p


# --------------------------------------------------------------- per-paper files of a data root


def qa_root(tmp_path: Path) -> tuple[Path, Path]:
    """A data root whose ``qa`` stage has one ``ok`` paper; returns (root, its per-paper file)."""
    root = tmp_path / "root"
    m = Manifest(root)
    m.upsert_papers([{"id": PID, "title": "Bars"}])
    f = paper_path(root / "qa", PID, ".json")
    f.parent.mkdir(parents=True)
    conv = {
        "conversation_id": f"{PID}#0",
        "system": "",
        "messages": [
            {"role": "user", "content": "What drives bar formation in disc galaxies?"},
            {"role": "assistant", "content": "Disc instabilities transfer angular momentum to the halo."},
        ],
    }
    f.write_text(json.dumps({"id": PID, "conversations": [conv], "counts": {"kept": 1}}))
    m.record("qa", PID, "ok", outputs={"qa": f})
    return root, f


def test_sft_convert_reads_a_sound_qa_root(tmp_path, run_astrollama):
    root, _ = qa_root(tmp_path)
    r = run_astrollama(["data", "sft-convert", "--input", f"qa={root}", "--out", str(tmp_path / "out")])
    assert r.code == 0, r.stderr[-2000:]


def test_a_per_paper_file_linked_out_of_the_root_is_refused_not_copied(tmp_path, refuse):
    root, f = qa_root(tmp_path)
    host = tmp_path / "host.json"
    host.write_text(f.read_text().replace("Disc instabilities", "HOST-SECRET"))
    f.unlink()
    f.symlink_to(host)
    out = tmp_path / "out"
    refuse(
        ["data", "sft-convert", "--input", f"qa={root}", "--out", str(out)],
        tmp_path,
        expect=["outside the data root"],
    )
    assert not out.exists()


@pytest.mark.parametrize("bad", ["fifo", "dev-zero", "huge", "directory"])
def test_a_per_paper_file_that_is_not_a_small_regular_file_is_refused_promptly(bad, tmp_path, refuse):
    root, f = qa_root(tmp_path)
    f.unlink()
    if bad == "dev-zero":  # inside the root: refused for what it is, not where it points
        f.symlink_to("/dev/zero")
    else:
        made = make_bad(bad, f.parent)
        made.rename(f)
    t0 = time.monotonic()
    refuse(
        ["data", "sft-convert", "--input", f"qa={root}", "--out", str(tmp_path / "out")],
        tmp_path,
        expect=[f.name],
    )
    assert time.monotonic() - t0 < 20


# ------------------------------------------------------------------------- results directories


def _embed_dir(root: Path, plot: str) -> Path:
    d = root / "embed"
    d.mkdir()
    stats = {"mean": 0.5, "std": 0.1, "p5": 0.3, "p50": 0.5, "p95": 0.7, "n_pairs": 6}
    sim = {"n_documents": 4, "models": {"base": stats, "trained": stats}, "plot": plot}
    (d / "similarity.json").write_text(json.dumps(sim))
    return d


@pytest.mark.parametrize("plot", ["ABSOLUTE", "../host.png", "link.png"])
def test_a_plot_named_by_a_results_file_stays_inside_its_directory(plot, tmp_path, refuse):
    host = tmp_path / "host.png"
    host.write_bytes(b"\x89PNG\r\n\x1a\nHOST-SECRET")
    base, trained = _base_trained(tmp_path, [True, True, False, True])
    embed = _embed_dir(tmp_path, str(host) if plot == "ABSOLUTE" else plot)
    if plot == "link.png":
        (embed / "link.png").symlink_to(host)
    out = tmp_path / "report"
    refuse(
        ["eval", "report", "--results", str(base), str(trained), "--embed", str(embed), "--out", str(out)],
        tmp_path,
        expect=["plot", "leads outside"],
    )
    assert not out.exists()


def test_a_plot_that_is_not_a_png_is_refused(tmp_path, refuse):
    base, trained = _base_trained(tmp_path, [True, True, False, True])
    embed = _embed_dir(tmp_path, "sim.png")
    (embed / "sim.png").write_text("not an image")
    refuse(
        [
            "eval",
            "report",
            "--results",
            str(base),
            str(trained),
            "--embed",
            str(embed),
            "--out",
            str(tmp_path / "o"),
        ],
        tmp_path,
        expect=["similarity.json: field 'plot'", "not a PNG"],
    )


def test_a_plot_inside_the_directory_is_copied(tmp_path, run_astrollama):
    base, trained = _base_trained(tmp_path, [True, True, False, True])
    embed = _embed_dir(tmp_path, "sim.png")
    png = b"\x89PNG\r\n\x1a\n" + os.urandom(32)
    (embed / "sim.png").write_bytes(png)
    out = tmp_path / "report"
    r = run_astrollama(
        ["eval", "report", "--results", str(base), str(trained), "--embed", str(embed), "--out", str(out)]
    )
    assert r.code == 0, r.stderr[-2000:]
    assert (out / "similarity.png").read_bytes() == png


@pytest.mark.parametrize("bad", ["fifo", "huge", "not-utf8"])
def test_quality_records_a_bad_per_paper_text_and_goes_on(bad, tmp_path, run_astrollama):
    """``data quality`` over an OCR ``.mmd`` that is a FIFO, 2 TiB or not UTF-8: that paper's row
    says why (one line), the command finishes promptly and reports the rest."""
    root = tmp_path / "root"
    m = Manifest(root)
    m.upsert_papers([{"id": PID, "title": "Bars"}, {"id": "2401.00102", "title": "Rings"}])
    good = paper_path(root / "ocr", "2401.00102", ".mmd")
    good.parent.mkdir(parents=True)
    good.write_text(
        "# Rings\n\n## Abstract\n\nRings form at resonances.\n\n## Introduction\n\nRings are common.\n"
    )
    made = make_bad(bad, good.parent)
    f = paper_path(root / "ocr", PID, ".mmd")
    made.rename(f)
    for pid, path in ((PID, f), ("2401.00102", good)):
        m.record("ocr", pid, "ok", outputs={"mmd": path})
    t0 = time.monotonic()
    r = run_astrollama(["data", "quality", "--root", str(root), "--out", str(tmp_path / "q.json")])
    assert r.code == 0, r.stderr[-2000:]
    assert time.monotonic() - t0 < 20
    rows = {x["id"]: x for x in json.loads((tmp_path / "q.json").read_text())["papers"]}
    expect = {"fifo": "not a regular file", "huge": "over the", "not-utf8": "not UTF-8"}[bad]
    assert expect in rows[PID]["error"] and "\n" not in rows[PID]["error"]
    assert "error" not in rows["2401.00102"]
