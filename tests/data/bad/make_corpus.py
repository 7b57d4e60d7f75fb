"""Regenerate the corpus of malformed inputs in this folder (``tests/data/bad/<case id>/`` + ``cases.json``).

Run from the repository root::

    .venv/bin/python tests/data/bad/make_corpus.py

Every case starts from a VALID tiny dataset in the real file layout (the writers of ``tests/fixtures_formats.py``,
which the loader tests pin against the released formats) and breaks exactly one thing. ``cases.json`` lists,
per case: ``id``, ``what`` (the defect), ``command`` (the ``neuralannot`` argv; placeholders ``{case}`` = this
case's folder, ``{out}`` = a fresh output path in a temp dir, ``{ckpt}`` = a checkpoint folder, ``{models}`` = the
stand-in model folder), ``annotator`` (``body``/``hand``: ``annotate`` runs with a fake annotator of that part so
the dataset, not the checkpoint, is under test; ``null``: the real checkpoint loader), ``expect`` (``error``:
exit code != 0 with a one-line message; ``skip``: exit 0 with the bad sample skipped and reported),
``message`` (substrings the one-line message must contain: the file and the field), ``known_gap`` (why
the case does not behave yet; the test is then a strict xfail) and ``loader`` (cases checked at the loader,
e.g. 3DPW: ``[kind, root, options]`` for ``load_dataset``; ``command`` is then null).

The files are deterministic: the same script writes the same bytes.
"""

from __future__ import annotations

import json
import pickle
import shutil
import struct
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
sys.path.insert(0, str(REPO))

from tests import fixtures_formats as ff  # noqa: E402

CASES: list[dict[str, Any]] = []

COCO_JSON = "annotations/coco_wholebody_train_v1.0.json"
H36M_DATA = "annotations/Human36M_subject1_data.json"
IH_DATA = "annotations/val/InterHand2.6M_val_data.json"


def _load(path: Path) -> Any:
    return json.loads(path.read_text())


def _dump(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))  # NaN / Infinity are written as the (non-standard) JSON literals


def _jpeg(path: Path, hw: tuple[int, int], seed: int) -> None:
    import cv2

    rng = np.random.default_rng(seed)
    img = rng.integers(0, 255, size=(hw[0], hw[1], 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 30])
    if not ok:
        raise RuntimeError("cv2.imencode failed")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.tobytes())


def case(cid: str, what: str, *, command: list[str] | None, message: list[str], expect: str = "error",
         annotator: str | None = None, loader: list[Any] | None = None, known_gap: str | None = None) -> Callable:
    def register(build: Callable[[Path], None]) -> Callable:
        CASES.append({"id": cid, "what": what, "command": command, "annotator": annotator, "expect": expect,
                      "message": message, "loader": loader, "known_gap": known_gap, "build": build})
        return build

    return register


# ----------------------------------------------------------------------------------------- COCO-WholeBody

def coco(d: Path, images: bool = False) -> tuple[Path, dict]:
    """Valid COCO-WholeBody train file (2 images, 4 annotations); tiny JPEGs when ``images``."""
    ff.write_coco_wholebody(d, split="train")
    path = d / COCO_JSON
    data = _load(path)
    # the fixture's x = 1000 * (part + 1) + j is a coordinate code, not a position: bring the keypoints
    # into the (small) images so that only the defect under test is wrong
    for ann in data["annotations"]:
        for name, _ in ff_parts():
            flat = ann[name]
            for j in range(0, len(flat), 3):
                if flat[j + 2]:
                    flat[j] = float(10 + (j // 3) % 40)
                    flat[j + 1] = float(12 + (j // 3) % 30)
    for img in data["images"]:
        img["width"], img["height"] = 64, 48
    for ann in data["annotations"]:
        ann["bbox"] = [4.0, 6.0, 50.0, 40.0]
    if images:
        for k, img in enumerate(data["images"]):
            _jpeg(d / "images" / "train2017" / img["file_name"], (48, 64), k)
    _dump(path, data)
    return path, data


def ff_parts() -> list[tuple[str, int]]:
    return [("keypoints", 17), ("foot_kpts", 6), ("face_kpts", 68), ("lefthand_kpts", 21), ("righthand_kpts", 21)]


ANNOTATE_COCO = ["annotate", f"{{case}}/{COCO_JSON}", "--checkpoint", "{ckpt}", "--out", "{out}"]
FIT_FACE_COCO = ["fit-face", f"{{case}}/{COCO_JSON}", "--out", "{out}", "--model-dir", "{models}",
                 "--iterations-scale", "0.01"]


@case("fit_face_out_under_a_file", "fit-face --out inside a path whose parent is a regular file (not writable)",
      command=["fit-face", f"{{case}}/{COCO_JSON}", "--out", "{case}/blocker/face.json", "--model-dir", "{models}",
               "--iterations-scale", "0.01"],
      message=["blocker/face.json", "cannot write"])
def _(d: Path) -> None:
    coco(d)
    (d / "blocker").write_text("a file, not a folder\n")


@case("coco_truncated_json", "COCO-WholeBody file cut off mid-way (interrupted download)",
      command=FIT_FACE_COCO, message=["coco_wholebody_train_v1.0.json", "<json>", "not valid JSON"])
def _(d: Path) -> None:
    path, _ = coco(d)
    text = path.read_text()
    path.write_text(text[: len(text) // 2])


@case("coco_top_level_list", "top level is a list, not an object",
      command=ANNOTATE_COCO, annotator="body", message=["coco_wholebody_train_v1.0.json", "<top level>", "expected an object"])
def _(d: Path) -> None:
    path, data = coco(d)
    _dump(path, data["annotations"])


@case("coco_missing_annotations", "no 'annotations' key", command=FIT_FACE_COCO,
      message=["coco_wholebody_train_v1.0.json", "annotations", "missing"])
def _(d: Path) -> None:
    path, data = coco(d)
    del data["annotations"]
    _dump(path, data)


@case("coco_annotations_not_list", "'annotations' is an object", command=ANNOTATE_COCO, annotator="body",
      message=["coco_wholebody_train_v1.0.json", "annotations", "expected a list"])
def _(d: Path) -> None:
    path, data = coco(d)
    data["annotations"] = {"0": data["annotations"][0]}
    _dump(path, data)


@case("coco_keypoints_wrong_length", "body keypoints hold 16 x 3 numbers instead of 17 x 3",
      command=ANNOTATE_COCO, annotator="body", message=["coco_wholebody_train_v1.0.json", "annotations[3].keypoints", "expected shape (17, 3)"])
def _(d: Path) -> None:
    path, data = coco(d)
    data["annotations"][3]["keypoints"] = data["annotations"][3]["keypoints"][:48]
    _dump(path, data)


@case("coco_face_kpts_wrong_length", "face_kpts with 67 points (fit-face)", command=FIT_FACE_COCO,
      message=["coco_wholebody_train_v1.0.json", "annotations[0].face_kpts"])
def _(d: Path) -> None:
    path, data = coco(d)
    data["annotations"][0]["face_kpts"] = data["annotations"][0]["face_kpts"][:-3]
    _dump(path, data)


@case("coco_keypoints_nan", "a NaN keypoint coordinate", command=ANNOTATE_COCO, annotator="body",
      message=["coco_wholebody_train_v1.0.json", "annotations[0].keypoints", "NaN"])
def _(d: Path) -> None:
    path, data = coco(d)
    data["annotations"][0]["keypoints"][3] = float("nan")
    _dump(path, data)


@case("coco_hand_kpts_inf", "an infinite right-hand keypoint", command=ANNOTATE_COCO, annotator="hand",
      message=["coco_wholebody_train_v1.0.json", "annotations[3].righthand_kpts", "infinite"])
def _(d: Path) -> None:
    path, data = coco(d)
    data["annotations"][3]["righthand_kpts"][4] = float("inf")
    _dump(path, data)


@case("coco_keypoints_negative_conf", "a keypoint visibility of -1", command=ANNOTATE_COCO, annotator="body",
      message=["coco_wholebody_train_v1.0.json", "annotations[0].keypoints", "visibility"])
def _(d: Path) -> None:
    path, data = coco(d)
    data["annotations"][0]["keypoints"][5] = -1
    _dump(path, data)


@case("coco_keypoints_far_outside", "a labelled keypoint 100 000 px outside the 64 x 48 image (that keypoint is "
      "dropped with confidence 0 and reported; the person is kept)", command=ANNOTATE_COCO, annotator="body",
      expect="skip", message=["coco_wholebody_train_v1.0.json", "annotations[0].keypoints", "outside"])
def _(d: Path) -> None:
    path, data = coco(d, images=True)
    data["annotations"][0]["keypoints"][3] = 1.0e5
    data["annotations"][0]["keypoints"][5] = 2
    _dump(path, data)


@case("coco_bbox_zero_area", "a person box of width 0 (skipped and reported, as Hand4Whole's process_bbox "
      "drops it)", command=ANNOTATE_COCO, annotator="body", expect="skip",
      message=["coco_wholebody_train_v1.0.json", "annotations[0].bbox", "skipped"])
def _(d: Path) -> None:
    path, data = coco(d, images=True)
    data["annotations"][0]["bbox"] = [4.0, 6.0, 0.0, 40.0]
    _dump(path, data)


@case("coco_bbox_negative_area", "a person box of negative height (skipped and reported)", command=ANNOTATE_COCO,
      annotator="body", expect="skip", message=["coco_wholebody_train_v1.0.json", "annotations[3].bbox", "skipped"])
def _(d: Path) -> None:
    path, data = coco(d, images=True)
    data["annotations"][3]["bbox"] = [4.0, 6.0, 30.0, -40.0]
    _dump(path, data)


@case("coco_bbox_wrong_length", "bbox with 3 numbers", command=FIT_FACE_COCO,
      message=["coco_wholebody_train_v1.0.json", "annotations[2].bbox", "expected 4 numbers, got 3"])
def _(d: Path) -> None:
    path, data = coco(d)
    data["annotations"][2]["bbox"] = [1.0, 2.0, 3.0]
    _dump(path, data)


@case("coco_duplicate_ann_ids", "two annotations with id 4", command=ANNOTATE_COCO, annotator="body",
      message=["coco_wholebody_train_v1.0.json", "annotations[3].id", "duplicate annotation id 4"])
def _(d: Path) -> None:
    path, data = coco(d)
    data["annotations"][0]["id"] = 4
    _dump(path, data)


@case("coco_unknown_image_id", "an annotation pointing at a missing image id", command=FIT_FACE_COCO,
      message=["coco_wholebody_train_v1.0.json", "annotations[1].image_id", "no image with id"])
def _(d: Path) -> None:
    path, data = coco(d)
    data["annotations"][1]["image_id"] = 999
    _dump(path, data)


@case("coco_valid_flag_string", "face_valid is the string 'yes'", command=FIT_FACE_COCO,
      message=["coco_wholebody_train_v1.0.json", "annotations[0].face_valid", "true/false"])
def _(d: Path) -> None:
    path, data = coco(d)
    data["annotations"][0]["face_valid"] = "yes"
    _dump(path, data)


@case("coco_image_missing", "the JPEG of image 37777 is not on disk", command=ANNOTATE_COCO, annotator="body",
      message=["000000037777.jpg", "image_path", "not found"])
def _(d: Path) -> None:
    coco(d, images=True)
    (d / "images" / "train2017" / "000000037777.jpg").unlink()


@case("coco_image_is_text", "a .jpg that holds text (an HTML error page saved as an image)", command=ANNOTATE_COCO,
      annotator="body", message=["000000397133.jpg", "image_path", "unreadable"])
def _(d: Path) -> None:
    coco(d, images=True)
    (d / "images" / "train2017" / "000000397133.jpg").write_text("<html>403 Forbidden</html>\n")


@case("coco_unknown_kind", "a dataset file whose name says no format (annotate cannot tell the joint set)",
      command=["annotate", "{case}/mystery_keypoints.json", "--checkpoint", "{ckpt}", "--out", "{out}"],
      annotator="body", message=["mystery_keypoints.json", "--kind"])
def _(d: Path) -> None:
    path, data = coco(d)
    shutil.move(path, d / "mystery_keypoints.json")
    shutil.rmtree(d / "annotations")


# ---------------------------------------------------------------------------------------------- Human3.6M

ANNOTATE_H36M = ["annotate", f"{{case}}/{H36M_DATA}", "--checkpoint", "{ckpt}", "--out", "{out}",
                 "--model-dir", "{models}"]


@case("h36m_joints_in_metres", "world joints in metres (a re-export) where the format has millimetres",
      command=ANNOTATE_H36M, annotator="body",
      message=["Human36M_subject1_joint_3d.json", '["2"]["1"]["0"]', "metres"])
def _(d: Path) -> None:
    info = ff.write_h36m(d)
    joints = _load(info["paths"]["joint_3d"])
    for f, v in joints["2"]["1"].items():
        joints["2"]["1"][f] = (np.asarray(v) / 1000.0).round(6).tolist()
    _dump(info["paths"]["joint_3d"], joints)


@case("h36m_joint_3d_16_joints", "a frame with 16 joints instead of 17", command=ANNOTATE_H36M, annotator="body",
      message=["Human36M_subject1_joint_3d.json", '["2"]["1"]["5"]', "(17, 3)"])
def _(d: Path) -> None:
    info = ff.write_h36m(d)
    joints = _load(info["paths"]["joint_3d"])
    joints["2"]["1"]["5"] = joints["2"]["1"]["5"][:16]
    _dump(info["paths"]["joint_3d"], joints)


@case("h36m_camera_file_missing", "Human36M_subject1_camera.json absent", command=ANNOTATE_H36M, annotator="body",
      message=["Human36M_subject1_camera.json", "not found"])
def _(d: Path) -> None:
    info = ff.write_h36m(d)
    info["paths"]["camera"].unlink()


@case("h36m_camera_missing_cam", "camera 4 used by the images is not in the camera file", command=ANNOTATE_H36M,
      annotator="body", message=["Human36M_subject1_camera.json", '["4"]', "missing"])
def _(d: Path) -> None:
    info = ff.write_h36m(d)
    cams = _load(info["paths"]["camera"])
    del cams["4"]
    _dump(info["paths"]["camera"], cams)


@case("h36m_missing_frame", "a frame the images use has no 3D joints", command=ANNOTATE_H36M, annotator="body",
      message=["Human36M_subject1_joint_3d.json", '["2"]["1"]["10"]', "missing"])
def _(d: Path) -> None:
    info = ff.write_h36m(d)
    joints = _load(info["paths"]["joint_3d"])
    del joints["2"]["1"]["10"]
    _dump(info["paths"]["joint_3d"], joints)


# ------------------------------------------------------------------------------------------ MPI-INF-3DHP

ANNOTATE_MPI = ["annotate", "{case}/MPI-INF-3DHP_1k.json", "--checkpoint", "{ckpt}", "--out", "{out}",
                "--model-dir", "{models}"]


@case("mpi3dhp_joints_in_metres", "world joints in metres", command=ANNOTATE_MPI, annotator="body",
      message=["MPI-INF-3DHP_joint_3d.json", '["1"]["2"]["0"]', "metres"])
def _(d: Path) -> None:
    info = ff.write_mpi3dhp(d)
    joints = _load(info["paths"]["joint_3d"])
    for f, v in joints["1"]["2"].items():
        joints["1"]["2"][f] = (np.asarray(v) / 1000.0).round(6).tolist()
    _dump(info["paths"]["joint_3d"], joints)


@case("mpi3dhp_focal_wrong_length", "a camera focal with one number", command=ANNOTATE_MPI, annotator="body",
      message=["MPI-INF-3DHP_camera_1k.json", "focal", "expected 2 numbers, got 1"])
def _(d: Path) -> None:
    info = ff.write_mpi3dhp(d)
    cams = _load(info["paths"]["camera"])
    cams["1"]["2"]["8"]["focal"] = [1497.7]
    _dump(info["paths"]["camera"], cams)


# ---------------------------------------------------------------------------------------------- FreiHAND

ANNOTATE_FREI = ["annotate", "{case}/training_xyz.json", "--checkpoint", "{ckpt}", "--out", "{out}"]


@case("freihand_xyz_in_mm", "xyz in millimetres where FreiHAND has metres", command=ANNOTATE_FREI,
      annotator="hand", message=["training_xyz.json", "[0]", "millimetres"])
def _(d: Path) -> None:
    info = ff.write_freihand(d)
    _dump(info["paths"]["xyz"], (info["xyz_m"] * 1000.0).round(3).tolist())


@case("freihand_k_count_mismatch", "2 intrinsics for 3 hands", command=ANNOTATE_FREI, annotator="hand",
      message=["training_K.json"])
def _(d: Path) -> None:
    info = ff.write_freihand(d)
    _dump(info["paths"]["K"], info["K"][:2].tolist())


@case("freihand_xyz_20_joints", "a hand with 20 joints", command=ANNOTATE_FREI, annotator="hand",
      message=["training_xyz.json", "[1]", "(21, 3)"])
def _(d: Path) -> None:
    info = ff.write_freihand(d)
    xyz = info["xyz_m"].tolist()
    xyz[1] = xyz[1][:20]
    _dump(info["paths"]["xyz"], xyz)


@case("freihand_xyz_nan", "a NaN joint", command=ANNOTATE_FREI, annotator="hand",
      message=["training_xyz.json", "[2]", "NaN"])
def _(d: Path) -> None:
    info = ff.write_freihand(d)
    xyz = info["xyz_m"].tolist()
    xyz[2][7][1] = float("nan")
    _dump(info["paths"]["xyz"], xyz)


# ------------------------------------------------------------------------------------------ InterHand2.6M

ANNOTATE_IH = ["annotate", f"{{case}}/{IH_DATA}", "--checkpoint", "{ckpt}", "--out", "{out}"]


@case("interhand_joints_in_metres", "world_coord in metres", command=ANNOTATE_IH, annotator="hand",
      message=["InterHand2.6M_val_joint_3d.json", "world_coord", "metres"])
def _(d: Path) -> None:
    info = ff.write_interhand(d)
    joints = _load(info["paths"]["joint_3d"])
    for f, v in joints["0"].items():
        v["world_coord"] = (np.asarray(v["world_coord"]) / 1000.0).round(6).tolist()
    _dump(info["paths"]["joint_3d"], joints)


@case("interhand_joint_valid_wrong_length", "joint_valid with 21 entries instead of 42", command=ANNOTATE_IH,
      annotator="hand", message=["InterHand2.6M_val_data.json", "annotations[1].joint_valid"])
def _(d: Path) -> None:
    info = ff.write_interhand(d)
    data = _load(info["paths"]["data"])
    data["annotations"][1]["joint_valid"] = data["annotations"][1]["joint_valid"][:21]
    _dump(info["paths"]["data"], data)


@case("interhand_unknown_hand_type", "hand_type 'both'", command=ANNOTATE_IH, annotator="hand",
      message=["InterHand2.6M_val_data.json", "annotations[0].hand_type", "both"])
def _(d: Path) -> None:
    info = ff.write_interhand(d)
    data = _load(info["paths"]["data"])
    data["annotations"][0]["hand_type"] = "both"
    _dump(info["paths"]["data"], data)


# ----------------------------------------------------------------------------------------------- 3DPW
# Checked at the loader, which `evaluate direct / indirect` and `train --aux 3dpw` read 3DPW through (their
# GT joints need SMPL files on top); the CLI surfaces its DatasetFormatError as it does for the other formats.


@case("pw3d_pose_wrong_length", "SMPL pose with 69 numbers", command=None, loader=["3dpw", "{case}", {"split": "test"}],
      message=["3DPW_test.json", "annotations[1].smpl_param.pose", "72"])
def _(d: Path) -> None:
    info = ff.write_3dpw(d)
    data = _load(info["paths"]["data"])
    data["annotations"][1]["smpl_param"]["pose"] = data["annotations"][1]["smpl_param"]["pose"][:69]
    _dump(info["paths"]["data"], data)


@case("pw3d_missing_cam_param", "an image without cam_param", command=None, loader=["3dpw", "{case}", {"split": "test"}],
      message=["3DPW_test.json", "images", "cam_param", "missing"])
def _(d: Path) -> None:
    info = ff.write_3dpw(d)
    data = _load(info["paths"]["data"])
    del data["images"][1]["cam_param"]
    _dump(info["paths"]["data"], data)


# ------------------------------------------------------------------------------------------ model files


@case("model_smplx_npz_empty", "an empty (0-byte) SMPLX_NEUTRAL.npz",
      command=["integrate", "--body", "{case}/body.json", "--out", "{out}", "--model-dir", "{case}/models"],
      message=["SMPLX_NEUTRAL.npz"])
def _(d: Path) -> None:
    (d / "models" / "smplx").mkdir(parents=True)
    (d / "models" / "smplx" / "SMPLX_NEUTRAL.npz").write_bytes(b"")
    _dump(d / "body.json", {})


@case("model_smplx_npz_truncated", "SMPLX_NEUTRAL.npz cut to its first 200 bytes",
      command=["integrate", "--body", "{case}/body.json", "--out", "{out}", "--model-dir", "{case}/models"],
      message=["SMPLX_NEUTRAL.npz"])
def _(d: Path) -> None:
    import io

    buf = io.BytesIO()
    np.savez(buf, v_template=np.zeros((10475, 3), np.float32), f=np.zeros((20908, 3), np.int32))
    (d / "models" / "smplx").mkdir(parents=True)
    (d / "models" / "smplx" / "SMPLX_NEUTRAL.npz").write_bytes(buf.getvalue()[:200])
    _dump(d / "body.json", {})


class _Evil:
    """Pickles to a call of ``os.system`` (the restricted unpickler must refuse it, never run it)."""

    def __reduce__(self):
        import os

        return (os.system, ("echo pwned > /dev/null",))


@case("model_flame_pkl_forbidden_global", "FLAME pickle whose stream calls os.system",
      command=["fit-face", f"{{case}}/{COCO_JSON}", "--out", "{out}", "--model-dir", "{case}/models"],
      message=["FLAME_NEUTRAL.pkl", "os"])
def _(d: Path) -> None:
    coco(d)
    (d / "models" / "flame").mkdir(parents=True)
    (d / "models" / "flame" / "FLAME_NEUTRAL.pkl").write_bytes(pickle.dumps({"v_template": _Evil()}, protocol=2))
    (d / "models" / "flame" / "flame_static_embedding.pkl").write_bytes(b"")  # present; never reached
    (d / "models" / "flame" / "flame_dynamic_embedding.npy").write_bytes(b"")


@case("model_mano_pkl_text", "MANO_RIGHT.pkl that is a text file", command=["models", "check", "--model-dir",
                                                                          "{case}/models"],
      message=["MANO_RIGHT.pkl"])
def _(d: Path) -> None:
    (d / "models" / "mano").mkdir(parents=True)
    (d / "models" / "mano" / "MANO_RIGHT.pkl").write_text("this is not a pickle\n")


# -------------------------------------------------------------------------------------------- checkpoints

ANNOTATE_CKPT = ["annotate", f"{{case}}/{COCO_JSON}", "--checkpoint", "{case}/ckpt", "--out", "{out}"]


def _safetensors_header_only(path: Path) -> None:
    header = json.dumps({"w": {"dtype": "F32", "shape": [1000], "data_offsets": [0, 4000]}}).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\x00" * 100)  # data cut at 100 of 4000 bytes


def _annotator_config() -> dict[str, Any]:
    return {"format": "neuralannot-annotator", "version": 1, "part": "body", "model_type": "smplx",
            "backbone_depth": 18, "code_dim": None, "input_size": 64, "joint_set": "coco_wholebody_133",
            "num_joints": 23, "weights": "model.safetensors", "prior": None, "model_dir": None, "train_config": {}}


@case("ckpt_missing_config", "checkpoint folder without config.json", command=ANNOTATE_CKPT,
      message=["config.json", "not found"])
def _(d: Path) -> None:
    coco(d)
    (d / "ckpt").mkdir()
    _safetensors_header_only(d / "ckpt" / "model.safetensors")


@case("ckpt_truncated_safetensors", "model.safetensors cut short (interrupted copy)", command=ANNOTATE_CKPT,
      message=["model.safetensors", "not a readable safetensors file"])
def _(d: Path) -> None:
    coco(d)
    (d / "ckpt").mkdir()
    _dump(d / "ckpt" / "config.json", _annotator_config())
    _safetensors_header_only(d / "ckpt" / "model.safetensors")


@case("ckpt_foreign_safetensors", "a valid safetensors file of another network", command=ANNOTATE_CKPT,
      message=["model.safetensors", "do not fit"])
def _(d: Path) -> None:
    from safetensors.numpy import save_file

    coco(d)
    (d / "ckpt").mkdir()
    _dump(d / "ckpt" / "config.json", _annotator_config())
    save_file({"encoder.layer0.weight": np.zeros((4, 4), np.float32)}, str(d / "ckpt" / "model.safetensors"))


@case("ckpt_config_foreign", "config.json of another tool (a Hugging Face config)", command=ANNOTATE_CKPT,
      message=["config.json", "format"])
def _(d: Path) -> None:
    coco(d)
    (d / "ckpt").mkdir()
    _dump(d / "ckpt" / "config.json", {"model_type": "bert", "hidden_size": 768})


# ---------------------------------------------------------------------------------------- integrate / out


@case("integrate_body_truncated", "body pseudo-GT JSON cut off", command=["integrate", "--body", "{case}/body.json",
                                                                          "--out", "{out}", "--model-dir", "{models}"],
      message=["body.json", "<json>", "not valid JSON"])
def _(d: Path) -> None:
    (d / "body.json").write_text('{"1": {"smplx_param": {"root_pose": [0.0, 0.')


@case("integrate_body_list", "body pseudo-GT is a list", command=["integrate", "--body", "{case}/body.json",
                                                                  "--out", "{out}", "--model-dir", "{models}"],
      message=["body.json", "<top level>"])
def _(d: Path) -> None:
    _dump(d / "body.json", [{"smplx_param": {}}])


@case("integrate_body_missing_field", "a body record without smplx_param",
      command=["integrate", "--body", "{case}/body.json", "--out", "{out}", "--model-dir", "{models}"],
      message=["body.json", "smplx_param"])
def _(d: Path) -> None:
    _dump(d / "body.json", {"7": {"cam_param": {"focal": [500.0, 500.0], "princpt": [32.0, 24.0]}}})


@case("out_parent_is_file", "--out inside a path whose parent is a regular file", command=[
    "fit-face", f"{{case}}/{COCO_JSON}", "--out", "{case}/blocker/face.json", "--model-dir", "{models}",
    "--iterations-scale", "0.01"], message=["blocker"])
def _(d: Path) -> None:
    coco(d)
    (d / "blocker").write_text("a file, not a folder\n")


@case("out_is_directory", "integrate --out names an existing folder", command=[
    "integrate", "--body", "{case}/body.json", "--out", "{case}/outdir", "--model-dir", "{models}"],
      message=["outdir"])
def _(d: Path) -> None:
    _dump(d / "body.json", {})
    (d / "outdir").mkdir()
    (d / "outdir" / ".keep").write_text("")


@case("synth_out_is_file", "synth --out names a regular file", command=[
    "synth", "--kind", "h36m", "--count", "1", "--out", "{case}/not_a_dir", "--model-dir", "{models}"],
      message=["not_a_dir"])
def _(d: Path) -> None:
    (d / "not_a_dir").write_text("x\n")


@case("train_unknown_aux_kind", "train --aux with an unknown dataset kind (joint set)", command=[
    "train", "--part", "body", "--aux", "h36n={case}", "--target", "coco_wholebody={case}", "--out", "{out}",
    "--no-progress"], message=["aux", "h36n"])
def _(d: Path) -> None:
    (d / ".keep").write_text("")


@case("train_config_yaml_truncated", "train --config YAML cut mid-way", command=[
    "train", "--config", "{case}/train.yaml", "--out", "{out}", "--no-progress"], message=["train.yaml"])
def _(d: Path) -> None:
    (d / "train.yaml").write_text("part: body\naux: {h36m: /data/h36m\nepochs: [1,\n")


def main() -> None:
    for child in HERE.iterdir():
        if child.is_dir() and not child.name.startswith(("_", ".")):
            shutil.rmtree(child)
    manifest = []
    for c in CASES:
        d = HERE / c["id"]
        d.mkdir()
        c["build"](d)
        manifest.append({k: v for k, v in c.items() if k != "build"})
    ids = [c["id"] for c in manifest]
    if len(set(ids)) != len(ids):
        raise SystemExit("duplicate case ids")
    (HERE / "cases.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"wrote {len(manifest)} cases under {HERE}")


if __name__ == "__main__":
    main()
