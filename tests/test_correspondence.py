"""Correspondence stage: features, matching, reference modes, files, errors."""

import h5py
import numpy as np
import pytest

from latentman.correspondence import (
    CorrespondenceInputs,
    CorrespondenceRecord,
    CorrespondenceSettings,
    compute_correspondences,
    correspond,
    downsample,
    part_features,
    read_correspondence,
    read_render_inputs,
    solver,
    write_correspondence,
)
from latentman.correspondence.match import match_hungarian
from latentman.correspondence.stage import run
from latentman.errors import IntermediateFileError
from latentman.io import atomic_h5, checksum, write_dataset


def blob_iuv(res=32, shift=(0, 0), seed=0, frames=1):
    """(F, res, res, 3) IUV: three rectangular parts with smooth, distinct U,V; optional shift."""
    rng = np.random.default_rng(seed)
    iuv = np.zeros((frames, res, res, 3), np.uint8)
    yy, xx = np.mgrid[0:res, 0:res]
    boxes = [(2, 14, 3, 12, 1), (4, 20, 14, 26, 2), (22, 30, 5, 13, 3)]
    for y0, y1, x0, x1, part in boxes:
        sl = (slice(y0, y1), slice(x0, x1))
        iuv[:, sl[0], sl[1], 0] = part
        iuv[:, sl[0], sl[1], 1] = (xx[sl] * 7 + part * 5) % 256
        iuv[:, sl[0], sl[1], 2] = (yy[sl] * 7 + rng.integers(0, 3)) % 256
    return np.roll(iuv, shift, axis=(1, 2))


def test_part_features_e_scaled_to_63_75():
    iuv = blob_iuv()[0]
    flat, feats = part_features(iuv, 2)
    assert len(flat) == 16 * 12
    assert feats[:, 2].max() == pytest.approx(63.75)
    assert abs(feats[:, 0].mean()) < 1e-9 and abs(feats[:, 1].mean()) < 1e-9


def test_downsample_takes_top_left_and_checks_divisibility():
    a = np.arange(2 * 8 * 8).reshape(2, 8, 8)
    d = downsample(a, 4)
    assert d.shape == (2, 4, 4) and d[0, 1, 1] == a[0, 2, 2]
    with pytest.raises(IntermediateFileError, match="not divisible"):
        downsample(a, 3)


def test_identity_and_injective_same_part():
    iuv = np.concatenate([blob_iuv(), blob_iuv()])
    out = correspond(iuv, "prev")
    src = out["source"][1].ravel()
    fg = np.flatnonzero(iuv[1, ..., 0].ravel() > 0)
    assert (src[fg] == fg).all() and (src[iuv[1, ..., 0].ravel() == 0] == -1).all()
    assert out["cost"][1] == pytest.approx(0.0, abs=1e-9)
    assert (out["source"][0] == -1).all()
    assert out["reference_index"].tolist() == [-1, 0]


def test_shift_gives_shifted_matches():
    k = 2
    iuv = np.concatenate([blob_iuv(), blob_iuv(shift=(k, k))])
    out = correspond(iuv, "prev")
    src = out["source"][1]
    ys, xs = np.nonzero(src >= 0)
    sy, sx = np.divmod(src[ys, xs], 32)
    assert (sy == ys - k).all() and (sx == xs - k).all()
    assert out["cost"][1] == pytest.approx(0.0, abs=1e-9)
    # same part only, injective
    labels_ref = iuv[0, ..., 0].ravel()[src[ys, xs]]
    assert (labels_ref == iuv[1, ys, xs, 0]).all()
    assert len(np.unique(src[ys, xs])) == len(ys)


def test_parts_only_in_one_frame_are_unmatched_and_rectangular():
    a = blob_iuv()[0]
    b = a.copy()
    b[b[..., 0] == 3] = 0  # part 3 vanishes
    b[4:8, 14:26] = 0  # part 2 shrinks
    out = correspond(np.stack([a, b]), "first")
    src = out["source"][1]
    assert (src[b[..., 0] == 0] == -1).all()
    assert (src[b[..., 0] > 0] >= 0).all()  # smaller side fully matched
    assert not np.isin(np.flatnonzero(a[..., 0].ravel() == 3), src).any()


def noisy_frames(frames=12, seed=3):
    """Frames that move and whose U changes a little at random pixels: every pair is a real problem."""
    rng = np.random.default_rng(seed)
    iuv = np.concatenate([blob_iuv(shift=(f % 3, f % 2)) for f in range(frames)])
    for f in range(frames):
        ys, xs = np.nonzero(iuv[f, ..., 0] > 0)
        pick = rng.choice(len(ys), 40, replace=False)
        iuv[f, ys[pick], xs[pick], 1] += rng.integers(1, 9, 40).astype(np.uint8)
    return iuv


@pytest.mark.parametrize("reference", ["prev", "first", "prev_new"])
def test_threads_and_batches_give_the_pairwise_result(reference, monkeypatch):
    # 12 frames: more pairs than one batch; two threads share the parts of all pairs
    monkeypatch.setattr(solver, "_THREADS_ABOVE", 0)  # threads even for these small frames
    iuv = noisy_frames()
    one = correspond(iuv, reference, workers=1)
    two = correspond(iuv, reference, workers=2)
    for key in ("source", "cost", "iuv", "reference_index"):
        np.testing.assert_array_equal(one[key], two[key])
    assert (one["cost"][1:] > 0).all()
    if reference != "prev_new":  # each pair on its own, as match_hungarian solves it
        for i in range(1, len(iuv)):
            r = one["reference_index"][i]
            source, cost, _ = match_hungarian(iuv[r], iuv[i])
            np.testing.assert_array_equal(one["source"][i], source)
            assert one["cost"][i] == cost


def test_prev_new_propagates_labels():
    a = blob_iuv()[0]
    b = blob_iuv(shift=(0, 1))[0]
    b[..., 1] = np.where(b[..., 0] > 0, (b[..., 1].astype(int) + 3) % 256, 0)  # U drift
    out = correspond(np.stack([a, b, b]), "prev_new")
    aligned = out["iuv"]
    src = out["source"][1]
    m = src >= 0
    assert (aligned[1][m] == a.reshape(-1, 3)[src[m]]).all()
    assert (aligned[0] == a).all()
    # frame 2 is matched against the aligned frame 1, so it inherits frame 0's values
    src2 = out["source"][2]
    m2 = src2 >= 0
    assert (aligned[2][m2] == aligned[1].reshape(-1, 3)[src2[m2]]).all()
    assert out["reference_index"].tolist() == [-1, 0, 1]


def test_empty_frame_warns_not_crashes(caplog):
    iuv = np.concatenate([blob_iuv(), np.zeros((1, 32, 32, 3), np.uint8)])
    out = correspond(iuv, "prev")
    assert (out["source"][1] == -1).all()
    assert "no foreground" in caplog.text


# ----------------------------------------------------------------------------- files
def write_render(path, iuv, res=None, surface=True, drop=None):
    f, h, w = iuv.shape[:3]
    with atomic_h5(path, "render", {"resolution": h, "frames": f, "fps": 20}) as h5:
        data = {"iuv": iuv, "mask": iuv[..., 0] > 0}
        if surface:
            # a flat grid mesh: pixel (y, x) of the part shows vertex-grid cell (y, x) at bary (1,0,0)
            n = h + 1
            vy, vx = np.mgrid[0:n, 0:n]
            verts = np.stack([vx.ravel() * 0.01, vy.ravel() * 0.01, np.zeros(n * n)], 1).astype(np.float32)
            cells = (vy[:-1, :-1] * n + vx[:-1, :-1]).ravel()
            faces = np.stack([cells, cells + 1, cells + n], 1).astype(np.int32)
            data["mesh/rest_vertices"] = verts
            data["mesh/faces"] = faces
            data["mesh/vertex_iuv"] = np.zeros((n * n, 3), np.float32)
            fid = np.where(iuv[..., 0] > 0, np.arange(h * w).reshape(h, w), -1).astype(np.int32)
            data["face_id"] = fid
            bary = np.zeros((f, h, w, 3), np.float16)
            bary[..., 0] = 1
            data["barycentric"] = bary
        for name, arr in data.items():
            if name != drop:
                write_dataset(h5, name, arr)
    return path


def test_file_roundtrip_and_rerun_identical(tmp_path):
    iuv = np.concatenate([blob_iuv(), blob_iuv(shift=(1, 0)), blob_iuv(shift=(2, 1))])
    iuv = iuv.repeat(2, axis=1).repeat(2, axis=2)  # 64² render -> grids 8² and 32²
    render = write_render(tmp_path / "r.h5", iuv, surface=False)
    digests = []
    settings = CorrespondenceSettings.from_config({"method": "hungarian", "surface_radius": None})
    for attempt in range(2):
        out = tmp_path / f"c{attempt}.h5"
        record = run(CorrespondenceInputs(render, "prev"), settings)
        write_correspondence(out, record)
        data = read_correspondence(out)
        digests.append(
            {g: data[g]["source"].tobytes() + data[g]["cost"].tobytes() for g in ("latent", "guidance")}
        )
    assert digests[0] == digests[1]
    assert data["latent"]["source"].shape == (3, 8, 8)
    assert data["guidance"]["iuv"].shape == (3, 32, 32, 3)
    assert data["reference_index"].tolist() == [-1, 0, 1]
    assert (tmp_path / "c0.h5").read_bytes() == (tmp_path / "c1.h5").read_bytes()


def test_run_gives_the_record_the_file_holds(tmp_path):
    """run reads the render file and writes nothing; its record is what write_correspondence stores, the
    same file as the maps of compute_correspondences written with their reference and method."""
    iuv = (
        np.concatenate([blob_iuv(), blob_iuv(shift=(1, 0)), blob_iuv(shift=(2, 1))]).repeat(2, 1).repeat(2, 2)
    )
    render = write_render(tmp_path / "r.h5", iuv, surface=False)
    settings = CorrespondenceSettings.from_config({"method": "hungarian", "surface_radius": None}, workers=2)
    assert settings == CorrespondenceSettings("hungarian", None, 2)
    record = run(CorrespondenceInputs(render, "prev_new"), settings)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.h5"]
    assert isinstance(record, CorrespondenceRecord)
    assert (record.method, record.reference, list(record.grids)) == (
        "hungarian",
        "prev_new",
        ["latent", "guidance"],
    )
    assert record.grids["latent"].grid == 8 and record.grids["guidance"].grid == 32
    write_correspondence(tmp_path / "c.h5", record)
    data = read_correspondence(tmp_path / "c.h5")
    assert (data["method"], data["reference"]) == ("hungarian", "prev_new")
    np.testing.assert_array_equal(data["reference_index"], record.reference_index)
    for name, grid in record.grids.items():
        np.testing.assert_array_equal(data[name]["source"], grid.source)
        np.testing.assert_array_equal(data[name]["iuv"], grid.iuv)
    maps = compute_correspondences(read_render_inputs(render, "hungarian"), "prev_new", workers=2)
    write_correspondence(tmp_path / "d.h5", maps, "prev_new", "hungarian")
    assert (tmp_path / "c.h5").read_bytes() == (tmp_path / "d.h5").read_bytes()


def test_surface_method_recovers_translation(tmp_path):
    # content moves by (1, 2) pixels at the 32² guidance grid; face ids move with it
    base = blob_iuv(res=32)
    iuv = np.concatenate([base, np.roll(base, (1, 2), axis=(1, 2))]).repeat(2, 1).repeat(2, 2)
    render = write_render(tmp_path / "r.h5", iuv)
    with h5py.File(render, "a") as h5:  # face ids of frame 1 = frame 0's, shifted with the content
        fid = h5["face_id"][()]
        fid[1] = np.roll(fid[0], (2, 4), axis=(0, 1))
        h5["face_id"][...] = fid
        h5["face_id"].attrs["crc32"] = checksum(fid)  # an edit on purpose, not a corruption
    res = compute_correspondences(read_render_inputs(render, "surface"), "prev", "surface", radius=0.001)
    src = res["guidance"]["source"][1]
    ys, xs = np.nonzero(src >= 0)
    assert len(ys) == (base[0, ..., 0] > 0).sum()
    sy, sx = np.divmod(src[ys, xs], 32)
    assert (sy == ys - 1).all() and (sx == xs - 2).all()
    assert res["guidance"]["cost"][1] == pytest.approx(0.0, abs=1e-9)


def test_bad_inputs(tmp_path):
    iuv = blob_iuv(frames=2).repeat(2, 1).repeat(2, 2)
    missing = write_render(tmp_path / "m.h5", iuv, drop="face_id")
    with pytest.raises(IntermediateFileError, match="face_id.*missing.*rule 'render'"):
        read_render_inputs(missing, "surface")
    odd = write_render(tmp_path / "o.h5", np.zeros((2, 60, 60, 3), np.uint8), surface=False)
    with pytest.raises(
        IntermediateFileError, match=r"o\.h5: 'iuv' has shape \(2, 60, 60, 3\).*multiple of 64"
    ):
        read_render_inputs(odd, "hungarian")
    # an error mid-write leaves no file
    out = tmp_path / "c.h5"
    with pytest.raises(RuntimeError):
        with atomic_h5(out, "correspondence"):
            raise RuntimeError("boom")
    assert not out.exists() and not list(tmp_path.glob("c*.h5*"))


def test_reader_rejects_truncated_and_non_injective(tmp_path):
    iuv = blob_iuv(frames=2).repeat(2, 1).repeat(2, 2)
    render = write_render(tmp_path / "r.h5", iuv, surface=False)
    out = tmp_path / "c.h5"
    res = compute_correspondences(read_render_inputs(render, "hungarian"), "prev")
    write_correspondence(out, res, "prev", "hungarian")
    raw = out.read_bytes()
    bad = tmp_path / "t.h5"
    bad.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(IntermediateFileError, match="t.h5.*rule 'correspondence'"):
        read_correspondence(bad)
    with h5py.File(out, "a") as h5:
        s = h5["latent/source"][()]
        s[1, 0, :2] = 5
        h5["latent/source"][...] = s
        h5["latent/source"].attrs["crc32"] = checksum(s)  # past the checksum: the semantic check must hold
    with pytest.raises(IntermediateFileError, match="not an injective"):
        read_correspondence(out)


def test_preview_written(tmp_path):
    from latentman.correspondence.preview import matched_share, write_preview

    iuv = (
        np.concatenate([blob_iuv(), blob_iuv(shift=(1, 0)), blob_iuv(shift=(2, 0))]).repeat(2, 1).repeat(2, 2)
    )
    render = write_render(tmp_path / "r.h5", iuv, surface=False)
    out = tmp_path / "c.h5"
    res = compute_correspondences(read_render_inputs(render, "hungarian"), "prev")
    write_correspondence(out, res, "prev", "hungarian")
    share = matched_share(res["guidance"]["iuv"], res["guidance"]["source"])
    assert np.isnan(share[0]) and share[1] > 0.9
    write_preview(out, tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
