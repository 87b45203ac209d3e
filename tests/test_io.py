"""Atomic writers and validating readers (latentman.io)."""

import os
import stat

import h5py
import numpy as np
import pytest

from latentman.errors import IntermediateFileError
from latentman.io import (
    FORMAT_VERSIONS,
    atomic_h5,
    atomic_path,
    check_array,
    open_intermediate,
    read_attr,
    read_h5_dataset,
    write_dataset,
    write_json,
    write_npz,
)


def test_atomic_path_renames_only_on_success(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []  # the temporary file is gone too

    with atomic_path(target) as tmp:
        tmp.write_text("whole")
    assert target.read_text() == "whole"


def test_atomic_path_refuses_empty_output_and_keeps_old_file(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(OSError, match="produced no data"):
        with atomic_path(target):
            pass
    assert target.read_text() == "old"


def test_written_files_get_normal_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        write_json(tmp_path / "a.json", {"x": 1})
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "a.json").stat().st_mode)
    # group and others can read (mkstemp alone would give 0600)
    assert mode & 0o044 == 0o044


def test_write_json_refuses_nan(tmp_path):
    with pytest.raises(ValueError):
        write_json(tmp_path / "a.json", {"x": float("nan")})
    assert not (tmp_path / "a.json").exists()


def test_npz_roundtrip(tmp_path):
    write_npz(tmp_path / "m.npz", {"joints": np.ones((2, 22, 3), np.float32)})
    with np.load(tmp_path / "m.npz") as data:
        assert data["joints"].shape == (2, 22, 3)


def test_h5_roundtrip_format_and_chunks(tmp_path):
    path = tmp_path / "r.h5"
    with atomic_h5(path, "render", {"note": {"a": 1}}) as h5:
        write_dataset(h5, "depth", np.zeros((3, 8, 8), np.float32))
    with open_intermediate(path, "render") as h5:
        assert h5["depth"].chunks == (1, 8, 8)
        depth = read_h5_dataset(h5, "depth", "render", shape=(None, 8, 8), dtype=np.float32)
        assert depth.shape == (3, 8, 8)
        with pytest.raises(IntermediateFileError, match="'mask' is missing.*rerun rule 'render'"):
            read_h5_dataset(h5, "mask", "render")


def test_read_attr_decodes_what_set_attr_stored(tmp_path):
    """One decoder for every attribute: plain values, set_attr's None and JSON text, bytes, numpy."""
    path = tmp_path / "a.h5"
    attrs = {"text": "walk", "number": 2.5, "count": 3, "none": None, "json": {"b": [1, "x"]}, "seq": [1, 2]}
    with atomic_h5(path, "render", attrs) as h5:
        h5.attrs["raw"] = np.bytes_(b"bytes")
    with h5py.File(path) as h5:
        assert read_attr(h5, "text") == "walk" and read_attr(h5, "raw") == "bytes"
        assert read_attr(h5, "number") == 2.5 and type(read_attr(h5, "number")) is float
        assert read_attr(h5, "count") == 3 and type(read_attr(h5, "count")) is int
        assert read_attr(h5, "none") is None and read_attr(h5, "seq") == [1, 2]
        assert read_attr(h5, "json", as_json=True) == {"b": [1, "x"]}
        assert read_attr(h5, "format") == "render"
        assert read_attr(h5, "absent", "default") == "default"
        with pytest.raises(KeyError, match="absent"):
            read_attr(h5, "absent")


def test_reader_rejects_missing_truncated_foreign_and_old_files(tmp_path):
    with pytest.raises(IntermediateFileError, match="file not found.*rule 'render'"):
        with open_intermediate(tmp_path / "none.h5", "render"):
            pass

    truncated = tmp_path / "t.h5"
    truncated.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 10)
    with pytest.raises(IntermediateFileError, match="truncated or foreign"):
        with open_intermediate(truncated, "render"):
            pass

    foreign = tmp_path / "f.h5"
    with h5py.File(foreign, "w") as h5:
        h5.attrs["format"] = "correspondence"
        h5.attrs["format_version"] = FORMAT_VERSIONS["correspondence"]
    with pytest.raises(IntermediateFileError, match="expected a 'render' file"):
        with open_intermediate(foreign, "render"):
            pass

    old = tmp_path / "o.h5"
    with h5py.File(old, "w") as h5:
        h5.attrs["format"] = "render"
        h5.attrs["format_version"] = 0
    with pytest.raises(IntermediateFileError, match="format version 0.*rerun rule 'render'"):
        with open_intermediate(old, "render"):
            pass


def test_check_array_names_shape_dtype_and_nan():
    with pytest.raises(IntermediateFileError, match=r"'x' has shape \(2, 3\), expected \(\*, 4\)"):
        check_array(np.zeros((2, 3)), "x", "f.h5", shape=(None, 4))
    with pytest.raises(IntermediateFileError, match="dtype float64, expected uint8"):
        check_array(np.zeros(3), "x", "f.h5", dtype=np.uint8)
    bad = np.zeros((2, 2))
    bad[1, 0] = np.nan
    with pytest.raises(IntermediateFileError, match=r"NaN or infinite values \(first at index \(1, 0\)\)"):
        check_array(bad, "x", "f.h5")


def test_stale_temporary_file_of_a_killed_writer_is_removed(tmp_path):
    stale = tmp_path / ".tmp-out-abc12_45.txt"
    stale.write_text("left by SIGKILL")
    # other targets' temporary files are not touched, also where their name starts like ours
    others = [tmp_path / ".tmp-other-abc12_45.txt", tmp_path / ".tmp-out-fast-abc12_45.txt"]
    for other in others:
        other.write_text("x")
    with atomic_path(tmp_path / "out.txt") as tmp:
        tmp.write_text("whole")
    assert not stale.exists() and all(other.exists() for other in others)
    assert (tmp_path / "out.txt").read_text() == "whole"
