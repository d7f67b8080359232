"""The other half of the one error policy: a fault of the machine or the network exits 1 with
one line, never a traceback, and is not blamed on the input (astrollama.cli.main)."""

from __future__ import annotations

import socket


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # free now, closed once the socket is gone


def test_an_unreachable_server_is_exit_1_in_one_line(tmp_path, refuse):
    url = f"http://127.0.0.1:{_closed_port()}/api"
    r = refuse(
        ["data", "harvest", "lookup", "--root", str(tmp_path / "root"), "--query", "bars", "--api-url", url],
        tmp_path,
        code=1,
        allow=[tmp_path / "root"],
    )
    assert "retry" in r.message or "127.0.0.1" in r.message


def test_an_internal_error_is_one_line_with_the_way_to_the_traceback(tmp_path, refuse, monkeypatch):
    """A defect (an exception no handler expected) is one line naming its type, exit 1; the
    traceback is one environment variable away."""
    import astrollama.data.manifest as manifest

    def broken(self):
        raise KeyError("a defect")

    monkeypatch.setattr(manifest.Manifest, "summary", broken)
    root = tmp_path / "root"
    manifest.Manifest(root).upsert_papers([{"id": "2401.00101", "title": "t"}])
    r = refuse(["data", "manifest", "summary", "--root", str(root)], tmp_path, code=1)
    assert "internal error (KeyError" in r.message and "ASTROLLAMA_DEBUG=1" in r.message
