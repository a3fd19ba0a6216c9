import codecs
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ftclient import fileio
from ftclient.errors import DataError, UsageError


def test_atomic_writer_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "out.jsonl"
    with pytest.raises(RuntimeError):
        with fileio.atomic_writer(target) as f:
            f.write("partial")
            raise RuntimeError("boom")
    assert not target.exists()
    assert os.listdir(tmp_path) == []


def test_atomic_writer_keeps_old_content_until_done(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with fileio.atomic_writer(target) as f:
            f.write("new")
            raise KeyboardInterrupt
    assert target.read_text() == "old"
    fileio.write_text_atomic(target, "new")
    assert target.read_text() == "new"


def test_atomic_writer_unwritable_dir_is_usage_error(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running as a user who can write anywhere")
        with pytest.raises(UsageError):
            with fileio.atomic_writer(ro / "x.json") as f:
                f.write("{}")
    finally:
        ro.chmod(0o700)


def test_atomic_writer_into_a_file_path_is_usage_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError):
        with fileio.atomic_writer(tmp_path / "file" / "out.json") as f:
            f.write("{}")


@pytest.mark.parametrize("bom, enc", [(codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"),
                                      (codecs.BOM_UTF16_BE, "utf-16-be")])
def test_iter_lines_accepts_boms(tmp_path, bom, enc):
    p = tmp_path / "f.jsonl"
    p.write_bytes(bom + 'a\nbé\n'.encode(enc))
    assert [t.rstrip("\n") for _, t in fileio.iter_lines(p)] == ["a", "bé"]


def test_iter_lines_errors_name_the_line(tmp_path):
    p = tmp_path / "f.jsonl"
    p.write_bytes(b"ok\nalso ok\n\xff\xfe bad\n")
    with pytest.raises(DataError, match=":3: not valid utf-8"):
        list(fileio.iter_lines(p))


def test_binary_empty_missing_and_directory(tmp_path):
    b = tmp_path / "b.bin"
    b.write_bytes(b"\x00\x01\x02" * 100)
    with pytest.raises(DataError, match="binary"):
        list(fileio.iter_lines(b))
    e = tmp_path / "e.jsonl"
    e.write_text("")
    with pytest.raises(DataError, match="empty"):
        list(fileio.iter_lines(e))
    with pytest.raises(UsageError, match="no such file"):
        list(fileio.iter_lines(tmp_path / "missing"))
    with pytest.raises(UsageError, match="directory"):
        list(fileio.iter_lines(tmp_path))


def test_huge_line_is_refused_without_reading_it_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(fileio, "MAX_LINE_BYTES", 1000)
    p = tmp_path / "huge.jsonl"
    p.write_text("short\n" + "x" * 5000 + "\n")
    with pytest.raises(DataError, match=":2: line longer"):
        list(fileio.iter_lines(p))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"), max_size=40), min_size=1, max_size=20))
def test_iter_lines_roundtrips_any_text(tmp_path_factory, lines):
    p = tmp_path_factory.mktemp("h") / "f.txt"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    got = [t[:-1] if t.endswith("\n") else t for _, t in fileio.iter_lines(p)]
    assert got == lines
    assert [n for n, _ in fileio.iter_lines(p)] == list(range(1, len(lines) + 1))
