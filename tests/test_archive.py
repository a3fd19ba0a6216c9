"""A provider's model archive unpacked: zstandard, gzip or plain tar; nothing written outside
its folder, nothing half-written, one clear error for every kind of bad archive."""

from __future__ import annotations

import io
import sys
import tarfile

import pytest

from test_download import _tar

from ftclient.archive import unpack_model_archive
from ftclient.errors import ConfigError, UsageError

MODEL = {"ckpt/model/config.json": b"{}", "ckpt/model/model.safetensors": b"\0" * 64, "ckpt/README": b"hi"}


def _left(tmp_path, *names):
    """What is in tmp_path besides ``names`` (a partial or hidden folder would show here)."""
    return sorted(p.name for p in tmp_path.iterdir() if p.name not in names)


@pytest.mark.parametrize("compress", ["zst", "gz", "none"])
def test_unpacks_and_finds_the_model_folder(tmp_path, compress):
    if compress == "zst":
        pytest.importorskip("zstandard")
    (tmp_path / "m.tar.zst").write_bytes(_tar(MODEL, compress=compress))
    found = unpack_model_archive(tmp_path / "m.tar.zst", tmp_path / "out")
    assert found == tmp_path / "out" / "ckpt" / "model"
    assert (found / "model.safetensors").read_bytes() == b"\0" * 64
    assert _left(tmp_path, "m.tar.zst", "out") == []


def _evil(kind: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("model/config.json")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"{}"))
        if kind == "dotdot":
            info = tarfile.TarInfo("../escaped.txt")
        elif kind == "absolute":
            info = tarfile.TarInfo("/ftc-escaped.txt")
        else:
            info = tarfile.TarInfo("model/link")
            info.type, info.linkname = tarfile.SYMTYPE, "../../../etc/passwd"
        if kind != "symlink":
            info.size = 4
        tar.addfile(info, io.BytesIO(b"evil") if kind != "symlink" else None)
    return buf.getvalue()


def test_an_absolute_member_lands_inside_the_folder(tmp_path):
    (tmp_path / "a.tar").write_bytes(_evil("absolute"))
    found = unpack_model_archive(tmp_path / "a.tar", tmp_path / "out")
    assert (tmp_path / "out" / "ftc-escaped.txt").read_bytes() == b"evil" and found == tmp_path / "out" / "model"


@pytest.mark.parametrize("kind", ["dotdot", "symlink"])
def test_a_member_that_leaves_the_folder_is_refused_and_nothing_is_left(tmp_path, kind):
    (tmp_path / "a.tar").write_bytes(_evil(kind))
    with pytest.raises(UsageError, match="not a model archive ftc can unpack"):
        unpack_model_archive(tmp_path / "a.tar", tmp_path / "out")
    assert _left(tmp_path, "a.tar") == [] and not (tmp_path.parent / "escaped.txt").exists()


def test_bad_archives_are_one_clear_error(tmp_path):
    pytest.importorskip("zstandard")
    cases = {"random.tar.zst": b"ftc-emulator archive ft-1 adapter\n" + b"x" * 4096,
             "cut.tar.zst": _tar(MODEL)[:-40],
             "empty.tar.zst": _tar({"notes/readme.txt": b"no model here"})}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(UsageError) as ei:
            unpack_model_archive(tmp_path / name, tmp_path / "out")
        assert "not a model archive" in ei.value.message or "holds no model" in ei.value.message, name
        assert not (tmp_path / "out").exists()
    assert _left(tmp_path, *cases) == []
    with pytest.raises(UsageError, match="no such archive"):
        unpack_model_archive(tmp_path / "missing.tar.zst", tmp_path / "out")
    (tmp_path / "out").mkdir()
    (tmp_path / "good.tar.zst").write_bytes(_tar(MODEL))
    with pytest.raises(UsageError, match="exists"):
        unpack_model_archive(tmp_path / "good.tar.zst", tmp_path / "out")


def test_without_zstandard_the_install_line_is_given(tmp_path, monkeypatch):
    pytest.importorskip("zstandard")
    (tmp_path / "m.tar.zst").write_bytes(_tar(MODEL))
    monkeypatch.setitem(sys.modules, "zstandard", None)
    with pytest.raises(ConfigError, match="zstandard") as ei:
        unpack_model_archive(tmp_path / "m.tar.zst", tmp_path / "out")
    assert 'ftclient[hosted]' in ei.value.hint and _left(tmp_path, "m.tar.zst") == []


def test_interrupted_or_too_little_space_leaves_nothing(tmp_path, monkeypatch):
    (tmp_path / "m.tar").write_bytes(_tar(MODEL, compress="none"))
    real = tarfile.TarFile.extractall

    def cut(self, path, *a, **k):
        real(self, path, *a, **k)
        raise KeyboardInterrupt

    monkeypatch.setattr(tarfile.TarFile, "extractall", cut)
    with pytest.raises(KeyboardInterrupt):
        unpack_model_archive(tmp_path / "m.tar", tmp_path / "out")
    assert _left(tmp_path, "m.tar") == []
    monkeypatch.setattr(tarfile.TarFile, "extractall", real)
    import shutil

    du = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: du(p)._replace(free=10))
    with pytest.raises(ConfigError, match="not enough disk space"):
        unpack_model_archive(tmp_path / "m.tar", tmp_path / "out")
    assert _left(tmp_path, "m.tar") == []
