"""Atomic writers and validating readers for every file passed between stages.

Writers never leave a file that looks complete after a crash: they write to a temporary
file in the destination directory and rename it into place (``os.replace`` is atomic on
POSIX), so a killed job leaves either the old file, nothing, or a ``.tmp-*`` file that no
reader accepts.

Every intermediate carries ``format`` (what it is) and ``format_version`` attributes. Readers
check them and the datasets they need, and name the rule to rerun when a file is wrong.

Every intermediate also records its :class:`Identity`: the prompt id, the variant (frames, eval), the
reference mode (correspondence), its ``settings_hash`` (:func:`identity_hash` of what it was made with) and
``made_from`` (the ``settings_hash`` of every file it was computed from). Readers take an optional expected
identity and compare (:func:`check_identity`): a file copied or swapped from another prompt, variant,
reference mode or upstream is refused with one line naming the file, what it holds, what was expected and
the rule to rerun. The workflow scripts always pass one; library callers may leave it out.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import json
import os
import re
import tempfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from latentman.errors import IntermediateFileError, LatentmanError, OutputWriteError

#: Bumped whenever a file layout changes; readers reject other versions with a rebuild hint.
FORMAT_VERSIONS = {
    "motion": 1,
    # 2: every dataset carries the CRC-32 of its values, verified on read
    # 3: per-frame camera extrinsics (F, 4, 4) + camera mode, per-joint fit error /smpl/joint_error_mm
    # 4: the identity (prompt_id, settings_hash, made_from)
    "render": 4,
    # 3: the identity (prompt_id, settings_hash, made_from; reference as before)
    "correspondence": 3,
    # 3: the identity (prompt_id, variant, settings_hash, made_from)
    "frames": 3,
    # motion and eval keep their versions: their identity keys are optional to library callers (files
    # written before read as having none) and required by the workflow, which refuses such a file
    "eval": 1,
}

#: The workflow rule that produces each format, for error messages.
PRODUCING_RULE = {
    "motion": "motion",
    "render": "render",
    "correspondence": "correspondence",
    "frames": "generate",
    "eval": "evaluate",
}


# --------------------------------------------------------------------------------------------
# atomic writes
# --------------------------------------------------------------------------------------------
def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    ``suffix`` defaults to the destination's suffix, so writers that pick a format from the
    extension (imageio, np.savez) behave as for the real name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix if suffix is None else suffix
    prefix = f".tmp-{path.stem}-"
    # A job killed while writing this file (SIGKILL, node failure) left its temporary file behind; only
    # the job that makes `path` writes these names, so any such file now is stale. The name must be
    # exactly prefix + mkstemp's 8 random characters + suffix: `.tmp-walk-*` alone would also match a
    # running job's `.tmp-walk-fast-*` (prompt ids may contain '-').
    stale_name = re.compile(re.escape(prefix) + r"[a-z0-9_]{8}" + re.escape(suffix))
    for stale in path.parent.glob(f"{glob.escape(prefix)}*{glob.escape(suffix)}"):
        if stale_name.fullmatch(stale.name):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
    fd, tmp_name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if not tmp.exists() or tmp.stat().st_size == 0:
            raise OSError(f"writing {path} produced no data")
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        # mkstemp creates 0600 files; give the result the usual permissions (0666 minus umask)
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        if isinstance(exc, OSError) and _is_out_of_space(exc):
            raise OutputWriteError(
                f"{path}: could not be written ({os.strerror(exc.errno) if exc.errno else exc}); nothing was "
                "left behind: free space on that file system (or raise the quota) and rerun the same command"
            ) from None
        raise


def _is_out_of_space(exc: OSError) -> bool:
    """Disk full, quota exceeded or file size limit, also when h5py wraps the error in its message."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return True
    text = str(exc).lower()
    return "no space left" in text or "quota exceeded" in text or "file too large" in text


def not_the_file(path: str | os.PathLike) -> str | None:
    """Why the binary file at ``path`` is not the file it claims to be (``None`` when it may well be).

    Catches what a clone or a copy leaves instead of data: an empty file, a Git LFS pointer, an absent
    git-annex object, a text file (an HTML error page saved under the file's name, a CSV renamed .npy).
    """
    path = Path(path)
    if path.is_symlink() and not path.exists():
        target = os.readlink(path)
        if ".git/annex/objects" in target:
            return "is a git-annex link whose content is not here (run `git annex get` on it)"
        return f"is a broken symbolic link (to {target})"
    try:
        with open(path, "rb") as handle:
            head = handle.read(512)
    except OSError:
        return None  # missing or unreadable: the caller's own check names that
    if not head:
        return "is empty (0 bytes)"
    if head.startswith(b"version https://git-lfs"):
        return "is a Git LFS pointer, not the file itself (run `git lfs pull`, or download the file)"
    if b"\0" not in head:
        try:
            text = head.decode("utf-8")
        except UnicodeDecodeError:
            return None
        if text.isprintable() or all(c.isprintable() or c.isspace() for c in text):
            first = text.strip().splitlines()[0][:60] if text.strip() else ""
            return f"is a text file, not binary data (it begins {first!r})"
    return None


def write_json(path: str | os.PathLike, data: Mapping[str, Any]) -> None:
    """Write ``data`` as indented JSON, atomically (NaN is refused: it is not valid JSON)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False, allow_nan=False) + "\n")


def write_npz(path: str | os.PathLike, arrays: Mapping[str, Any]) -> None:
    """Write a compressed ``.npz`` atomically."""
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, **{k: np.asarray(v) for k, v in arrays.items()})


def write_videos(frames: np.ndarray, fps: float, mp4_path: str | os.PathLike, gif_path: str | os.PathLike):
    """``frames`` ``(F, H, W, 3)`` uint8 as an H.264 MP4 and a looping GIF, each written atomically."""
    import imageio.v2 as imageio

    frames = np.asarray(frames, dtype=np.uint8)
    with atomic_path(mp4_path) as tmp:
        # Even sizes for yuv420p; macro_block_size=1 keeps the size as drawn.
        even = frames[:, : frames.shape[1] // 2 * 2, : frames.shape[2] // 2 * 2]
        imageio.mimsave(tmp, list(even), format="FFMPEG", fps=fps, macro_block_size=1)
    with atomic_path(gif_path) as tmp:
        imageio.mimsave(tmp, list(frames), format="GIF", duration=1000.0 / fps, loop=0)


@contextlib.contextmanager
def atomic_h5(path: str | os.PathLike, file_format: str, attrs: Mapping[str, Any] | None = None):
    """Open a new HDF5 file for writing under a temporary name, stamped with its format/version.

    The file is renamed onto ``path`` only when the ``with`` block finishes without error.
    """
    with atomic_path(path, suffix=".h5") as tmp:
        with h5py.File(tmp, "w") as h5:
            h5.attrs["format"] = file_format
            h5.attrs["format_version"] = FORMAT_VERSIONS[file_format]
            for key, value in (attrs or {}).items():
                set_attr(h5, key, value)
            yield h5


def set_attr(obj: h5py.HLObject, key: str, value: Any) -> None:
    """Store ``value`` as an HDF5 attribute; dicts and lists of mixed types go in as JSON text."""
    if isinstance(value, Mapping) or (
        isinstance(value, list | tuple) and any(isinstance(v, Mapping | str | type(None)) for v in value)
    ):
        obj.attrs[key] = json.dumps(value, sort_keys=True)
    elif value is None:
        obj.attrs[key] = "null"
    else:
        obj.attrs[key] = value


_REQUIRED = object()


def read_attr(obj: h5py.HLObject, key: str, default: Any = _REQUIRED, *, as_json: bool = False) -> Any:
    """The one decoder of an HDF5 attribute: its value as plain Python.

    bytes become str, :func:`set_attr`'s ``"null"`` becomes ``None``, numpy scalars Python scalars and
    arrays lists; ``as_json`` parses an attribute :func:`set_attr` stored as JSON text (dicts, mixed lists).
    A missing attribute gives ``default``, or ``KeyError`` when there is none.
    """
    if key not in obj.attrs:
        if default is _REQUIRED:
            raise KeyError(f"attribute {key!r} is missing")
        return default
    value = obj.attrs[key]
    if isinstance(value, bytes):
        value = value.decode()
    if as_json:
        return json.loads(value)
    if isinstance(value, str) and value == "null":
        return None
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def checksum(data: np.ndarray) -> int:
    """CRC-32 of an array's values (C order): stored with every dataset, verified by every reader."""
    return zlib.crc32(np.ascontiguousarray(data).tobytes())


def write_dataset(h5: h5py.Group, name: str, data: np.ndarray, per_frame: bool = True, **attrs: Any):
    """Write ``data`` compressed, with its :func:`checksum`; chunked one frame at a time along axis 0 when
    ``per_frame``."""
    data = np.asarray(data)
    attrs = {"crc32": checksum(data), **attrs}
    chunks = None
    if per_frame and data.ndim >= 2 and data.shape[0] > 0:
        chunks = (1, *data.shape[1:])
    dset = h5.create_dataset(
        name, data=data, chunks=chunks, compression="gzip" if data.size > 64 else None, compression_opts=None
    )
    for key, value in attrs.items():
        set_attr(dset, key, value)
    return dset


# --------------------------------------------------------------------------------------------
# identities: which prompt, variant, reference mode and upstream files a file was made for
# --------------------------------------------------------------------------------------------
def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    return str(value)


def identity_hash(value: Any) -> str:
    """A short stable hash (16 hex digits of SHA-256) of JSON-like ``value`` (key order does not matter)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=_plain)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Identity:
    """What a file was made for. As written: every field a writer knows. As expected: ``None`` = not checked.

    ``made_from`` maps an upstream kind (``motion``, ``render``, ``correspondence``, ``frames``) to the
    ``settings_hash`` of the file it was computed from; ``sources`` (expected identities only) names where
    an expected hash came from, for the message.
    """

    prompt: str | None = None
    variant: str | None = None
    reference: str | None = None
    settings_hash: str | None = None
    made_from: Mapping[str, str] | None = None
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    def attrs(self) -> dict[str, Any]:
        """The identity as a writer records it (HDF5 root attributes, npz or JSON keys)."""
        return {
            "prompt_id": self.prompt,
            "variant": self.variant,
            "reference": self.reference,
            "settings_hash": self.settings_hash,
            "made_from": dict(self.made_from) if self.made_from is not None else None,
        }

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any]) -> Identity:
        """The identity recorded in ``attrs`` (missing keys, "" and ``None`` give ``None``)."""

        def text(key: str) -> str | None:
            value = attrs.get(key)
            return None if value is None or value == "" else str(value)

        made_from = attrs.get("made_from")
        if isinstance(made_from, str):
            made_from = json.loads(made_from) if made_from else None
        return cls(
            prompt=text("prompt_id"),
            variant=text("variant"),
            reference=text("reference"),
            settings_hash=text("settings_hash"),
            made_from=dict(made_from) if isinstance(made_from, Mapping) else None,
        )


def _rerun(file_format: str) -> str:
    rule = PRODUCING_RULE.get(file_format, file_format)
    return f"rerun rule '{rule}' (snakemake --cores all --forcerun {rule})"


def check_identity(
    path: str | os.PathLike, file_format: str, found: Identity, expected: Identity | None
) -> Identity:
    """Compare the identity a file records with the one its reader expects; return ``found``.

    Raises:
        IntermediateFileError: one line naming the file, what it holds, what was expected and the rule
            to rerun, at the first field that differs (a field the file does not record differs too).
    """
    if expected is None:
        return found
    hint = _rerun(file_format)
    for name, label in (
        ("prompt", "prompt"),
        ("variant", "variant"),
        ("reference", "reference mode"),
        ("settings_hash", "settings hash"),
    ):
        want, got = getattr(expected, name), getattr(found, name)
        if want is None or want == got:
            continue
        if got is None:
            raise IntermediateFileError(
                f"{path} records no {label} (expected {want!r}; written by an older latentman or without an "
                f"identity); {hint}"
            )
        raise IntermediateFileError(f"{path} holds {label} {got!r} (expected {want!r}); {hint}")
    for kind, want in (expected.made_from or {}).items():
        if want is None:
            continue
        got = (found.made_from or {}).get(kind)
        source = expected.sources.get(kind)
        whose = f", that of {source}" if source else ""
        if got is None:
            raise IntermediateFileError(
                f"{path} records no {kind} it was made from (expected {kind} settings hash {want!r}{whose}; "
                f"written by an older latentman or without an identity); {hint}"
            )
        if got != want:
            raise IntermediateFileError(
                f"{path} was made from {kind} settings hash {got!r} (expected {want!r}{whose}); {hint}"
            )
    return found


def write_identity(h5: h5py.Group, identity: Identity) -> None:
    """Record ``identity`` as root attributes of an HDF5 file being written."""
    for key, value in identity.attrs().items():
        set_attr(h5, key, value)


def read_identity(h5: h5py.Group) -> Identity:
    """The identity recorded in an HDF5 file's root attributes (fields it lacks are ``None``)."""
    attrs = {key: read_attr(h5, key, None) for key in ("prompt_id", "variant", "reference", "settings_hash")}
    attrs["made_from"] = read_attr(h5, "made_from", None, as_json=True) if "made_from" in h5.attrs else None
    return Identity.from_attrs(attrs)


# --------------------------------------------------------------------------------------------
# validating readers
# --------------------------------------------------------------------------------------------
def _rerun_hint(file_format: str) -> str:
    rule = PRODUCING_RULE.get(file_format, file_format)
    return f"delete it and rerun rule '{rule}' (snakemake --cores all --forcerun {rule})"


@contextlib.contextmanager
def open_intermediate(path: str | os.PathLike, file_format: str) -> Iterator[h5py.File]:
    """Open an HDF5 intermediate read-only after checking it is whole, ours, and current (``with`` only).

    Whatever a damaged file makes h5py raise inside the block (KeyError, OSError, ...) leaves it as one
    IntermediateFileError naming the file and the rule to rerun.
    """
    path = Path(path)
    if not path.exists():
        raise IntermediateFileError(
            f"{path}: file not found; it is made by rule '{PRODUCING_RULE[file_format]}'"
        )
    try:
        h5 = h5py.File(path, "r")
    except Exception as exc:
        raise IntermediateFileError(
            f"{path}: not a readable HDF5 file (truncated or foreign: {exc}); {_rerun_hint(file_format)}"
        ) from None
    try:
        _check_format(h5, path, file_format)
        yield h5
    except LatentmanError:
        raise
    except Exception as exc:
        raise IntermediateFileError(
            f"{path}: damaged file ({type(exc).__name__}: {exc}); {_rerun_hint(file_format)}"
        ) from None
    finally:
        h5.close()


def _check_format(h5: h5py.File, path: Path, file_format: str) -> None:
    found = read_attr(h5, "format", None)
    if found != file_format:
        raise IntermediateFileError(
            f"{path}: expected a '{file_format}' file, found format={found!r}; {_rerun_hint(file_format)}"
        )
    version = int(h5.attrs.get("format_version", -1))
    if version != FORMAT_VERSIONS[file_format]:
        raise IntermediateFileError(
            f"{path}: format version {version}, this version of latentman reads version "
            f"{FORMAT_VERSIONS[file_format]}; {_rerun_hint(file_format)}"
        )


def check_array(
    array: np.ndarray,
    name: str,
    source: str | os.PathLike,
    shape: tuple[int | None, ...] | None = None,
    dtype: Any | tuple[Any, ...] | None = None,
    finite: bool = True,
) -> np.ndarray:
    """Validate an array's shape (``None`` = any size on that axis), dtype and finiteness.

    ``source`` names the file (or key) in the error message.
    """
    array = np.asarray(array)
    if shape is not None:
        ok = array.ndim == len(shape) and all(
            want is None or want == got for want, got in zip(shape, array.shape)
        )
        if not ok:
            want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
            raise IntermediateFileError(f"{source}: '{name}' has shape {array.shape}, expected {want}")
    if dtype is not None:
        allowed = tuple(np.dtype(d) for d in (dtype if isinstance(dtype, tuple) else (dtype,)))
        if array.dtype not in allowed:
            names = " or ".join(str(d) for d in allowed)
            raise IntermediateFileError(f"{source}: '{name}' has dtype {array.dtype}, expected {names}")
    if finite and np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        bad = np.argwhere(~np.isfinite(array))[0]
        where = f" (first at index {tuple(int(i) for i in bad)})"
        raise IntermediateFileError(f"{source}: '{name}' contains NaN or infinite values{where}")
    return array


def read_h5_dataset(h5: h5py.File, name: str, file_format: str, **checks: Any) -> np.ndarray:
    """Read a dataset, naming the file and the rule to rerun if it is missing or malformed."""
    if name not in h5:
        raise IntermediateFileError(f"{h5.filename}: dataset '{name}' is missing; {_rerun_hint(file_format)}")
    try:
        data = h5[name][()]
        stored = h5[name].attrs.get("crc32")
    except OSError as exc:
        raise IntermediateFileError(
            f"{h5.filename}: dataset '{name}' cannot be read ({exc}); {_rerun_hint(file_format)}"
        ) from None
    # A flipped bit in an uncompressed dataset (or one gzip does not notice) would otherwise be used.
    if stored is None or int(stored) != checksum(data):
        problem = (
            "has no checksum" if stored is None else "does not match its checksum (the file is corrupted)"
        )
        raise IntermediateFileError(f"{h5.filename}: dataset '{name}' {problem}; {_rerun_hint(file_format)}")
    return check_array(data, name, h5.filename, **checks)
