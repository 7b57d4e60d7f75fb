"""The annotator: a trained stage-2 network + pose prior + body model, predicting pseudo-GT for crops.

``load_annotator(dir, device)`` rebuilds it from a training output directory (``config.json``,
``model.safetensors``, ``prior/``; see :mod:`.checkpoint`). ``Annotator.predict(batch)`` takes a batch
collated from :class:`~neuralannot_cli.data.pipeline.CroppedSampleDataset` items (un-augmented; optionally
wrapped by :class:`~neuralannot_cli.train.datasets.MirroredCrops`, whose ``mirrored`` flag marks left hands
shown mirrored as right hands) and returns a :class:`Prediction` in the ORIGINAL image's camera:

1. the network gives ``root_rotvec``, ``pose_rotvecs`` (decoded by the prior), ``betas``, ``cam_sxy``;
2. ``transl`` in the crop camera (:func:`~neuralannot_cli.train.geometry.crop_transl`); for an un-rotated,
   un-mirrored crop the crop camera frame is the original camera frame, so this is ``transl_cam_m``
   (equal to :func:`neuralannot_cli.camera.cam_crop_to_full` with the full-image box and intrinsics);
3. joints = body model(params, transl) in the target joint set; ``keypoints_2d_px`` = their pinhole
   projection with the original ``focal_px`` / ``princpt_px`` (which equals the crop projection mapped
   through ``crop_affine_inv``).

Mirrored items (left hands): the network sees a right hand in a mirrored camera. The prediction is turned
into the LEFT hand in the original camera: rotations mirrored (:func:`~neuralannot_cli.rotation.mirror_rotvec`,
root and pose), ``transl`` and joints with ``x -> -x``; ``Prediction.mirrored`` is True and the parameters
are for the left MANO model (whose mesh is the mirror image of the right one).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from neuralannot_cli.camera import project_perspective
from neuralannot_cli.rotation import mirror_rotvec
from neuralannot_cli.train.geometry import body_forward, crop_transl

__all__ = ["Prediction", "Annotator", "load_annotator", "ANNOTATOR_FORMAT", "predict_with"]

ANNOTATOR_FORMAT = "neuralannot-annotator"
ANNOTATOR_VERSION = 1
_REQUIRED_KEYS = ("image", "focal_px", "princpt_px", "focal_crop_px", "princpt_crop_px", "crop_affine_inv")


@dataclass(frozen=True)
class Prediction:
    """Pseudo-GT of a batch, in the original image's camera (OpenCV frame, metres unless named).

    Attributes:
        root_rotvec: ``(B, 3)`` global rotation, camera frame.
        pose_rotvecs: ``(B, K, 3)`` body (21) or hand (15) rotations relative to the parents (SMPL-X body
            pose; MANO hand pose relative to the mean hand, ``flat_hand_mean=False``).
        betas: ``(B, 10)``.
        transl_cam_m: ``(B, 3)`` model translation (``transl`` of smplx) in the original camera.
        focal_px, princpt_px: ``(B, 2)`` the original camera's intrinsics used for the projection.
        keypoints_2d_px: ``(B, J, 2)`` target-set joints projected into the original image.
        joints_3d_cam_mm: ``(B, J, 3)`` the same joints in the camera frame, millimetres.
        cam_sxy: ``(B, 3)`` the network's weak-perspective camera (crop-normalised).
        mirrored: ``(B,)`` bool: the item was a mirrored left hand; parameters are for the LEFT MANO.
    """

    root_rotvec: torch.Tensor
    pose_rotvecs: torch.Tensor
    betas: torch.Tensor
    transl_cam_m: torch.Tensor
    focal_px: torch.Tensor
    princpt_px: torch.Tensor
    keypoints_2d_px: torch.Tensor
    joints_3d_cam_mm: torch.Tensor
    cam_sxy: torch.Tensor
    mirrored: torch.Tensor


def target_joints(body_model, part: str, output) -> torch.Tensor:
    """``(B, J, 3)`` joints of the target joint set: body = first 23 of coco_wholebody_133, hand = hand_21."""
    if part == "body":
        return body_model.joints_in(output, "coco_wholebody_133")[:, :23]
    return body_model.joints_in(output, "hand_21")


def predict_with(net, prior, body_model, part: str, batch: dict[str, Any], device: torch.device) -> Prediction:
    """Run ``net`` (+ ``prior``) on a collated batch and convert to the original camera (module docstring)."""
    missing = [k for k in _REQUIRED_KEYS if k not in batch]
    if missing:
        raise ValueError(f"predict: batch lacks {missing}; pass a batch collated from CroppedSampleDataset items")
    images = batch["image"].to(device)
    if images.dim() != 4 or images.shape[1] != 3 or images.shape[2] != images.shape[3]:
        raise ValueError(f"predict: batch['image'] must have shape (batch, 3, S, S), got {tuple(images.shape)}")
    size = int(images.shape[-1])
    b = images.shape[0]
    out = net(images, prior) if prior is not None else net(images)
    pose = out.pose_rotvecs
    focal_crop = batch["focal_crop_px"].to(device).float()
    princpt_crop = batch["princpt_crop_px"].to(device).float()
    transl = crop_transl(out.cam_sxy.float(), focal_crop, princpt_crop, size)
    bo = body_forward(body_model, part, out.root_rotvec, pose, out.betas, transl)
    joints = target_joints(body_model, part, bo).float()  # crop (= original, or mirrored) camera frame
    mirrored = batch.get("mirrored")
    mirrored = torch.zeros(b, dtype=torch.bool, device=device) if mirrored is None else mirrored.to(device).bool().reshape(b)
    root, pose_out = out.root_rotvec.float(), pose.float()
    if bool(mirrored.any()):
        m = mirrored
        sign = torch.tensor([-1.0, 1.0, 1.0], device=device)
        joints = torch.where(m[:, None, None], joints * sign, joints)
        transl = torch.where(m[:, None], transl * sign, transl)
        root = torch.where(m[:, None], mirror_rotvec(root), root)
        pose_out = torch.where(m[:, None, None], mirror_rotvec(pose_out), pose_out)
    focal = batch["focal_px"].to(device).float()
    princpt = batch["princpt_px"].to(device).float()
    kp2d = project_perspective(joints, focal, princpt)
    return Prediction(
        root_rotvec=root, pose_rotvecs=pose_out, betas=out.betas.float(), transl_cam_m=transl,
        focal_px=focal, princpt_px=princpt, keypoints_2d_px=kp2d, joints_3d_cam_mm=joints * 1000.0,
        cam_sxy=out.cam_sxy.float(), mirrored=mirrored,
    )


class Annotator:
    """A trained stage-2 annotator (build with :func:`load_annotator`).

    Attributes:
        part: ``'body'`` or ``'hand'``; model_type: ``'smplx'`` / ``'mano'``; input_size: crop side;
        joint_set: name of the joint set of ``keypoints_2d_px`` (body: ``'coco_wholebody_133'``, of which
        the first ``num_joints`` = 23; hand: ``'hand_21'``); num_joints; config: the ``config.json`` dict.
    """

    def __init__(self, net, prior, body_model, config: dict[str, Any], device: torch.device) -> None:
        self.net = net.eval()
        self.prior = prior.eval() if prior is not None else None
        self.body_model = body_model
        self.config = config
        self.device = device
        self.part: str = config["part"]
        self.model_type: str = config["model_type"]
        self.input_size: int = int(config["input_size"])
        self.joint_set: str = config["joint_set"]
        self.num_joints: int = int(config["num_joints"])

    @torch.no_grad()
    def predict(self, batch: dict[str, Any]) -> Prediction:
        """Predict a collated batch (see the module docstring); crops must be ``input_size`` pixels."""
        if int(batch["image"].shape[-1]) != self.input_size:
            raise ValueError(f"predict: crops of {tuple(batch['image'].shape[-2:])} px given, the annotator was "
                             f"trained on {self.input_size} px (build the dataset with input_size={self.input_size})")
        return predict_with(self.net, self.prior, self.body_model, self.part, batch, self.device)


def annotator_config(*, part: str, model_type: str, backbone_depth: int, code_dim: int | None, input_size: int,
                     has_prior: bool, train_config: dict[str, Any]) -> dict[str, Any]:
    """The ``config.json`` dict that rebuilds an annotator."""
    return {
        "format": ANNOTATOR_FORMAT, "version": ANNOTATOR_VERSION, "part": part, "model_type": model_type,
        "backbone_depth": int(backbone_depth), "code_dim": code_dim, "input_size": int(input_size),
        "joint_set": "coco_wholebody_133" if part == "body" else "hand_21",
        "num_joints": 23 if part == "body" else 21,
        "weights": "model.safetensors", "prior": "prior" if has_prior else None,
        "model_dir": train_config.get("model_dir"), "train_config": train_config,
    }


def load_annotator(directory: str | Path, device: torch.device | str = "cpu", *, model_dir: str | Path | None = None) -> Annotator:
    """Rebuild the annotator written by ``neuralannot train`` in ``directory``.

    Args:
        directory: the training output directory (``config.json``, ``model.safetensors``, ``prior/``).
        device: where to run.
        model_dir: body-model folder overriding the one recorded at training time.

    Raises:
        FileNotFoundError: a missing file (named). ValueError: a config of another format, or weights that
            do not fit it.
    """
    from neuralannot_cli.body import load_body_model
    from neuralannot_cli.nets.heads import Stage2Net
    from neuralannot_cli.train.checkpoint import load_tensors, read_json

    directory = Path(directory)
    device = torch.device(device)
    cfg_path = directory / "config.json"
    cfg = read_json(cfg_path)
    if not isinstance(cfg, dict) or cfg.get("format") != ANNOTATOR_FORMAT:
        raise ValueError(f"{cfg_path}: format: expected {ANNOTATOR_FORMAT!r}, got {cfg.get('format') if isinstance(cfg, dict) else cfg!r}")
    for key in ("part", "model_type", "backbone_depth", "input_size", "joint_set", "num_joints", "weights"):
        if key not in cfg:
            raise ValueError(f"{cfg_path}: {key}: missing")
    net = Stage2Net(cfg["part"], int(cfg["backbone_depth"]), cfg.get("code_dim"))
    state = load_tensors(directory / cfg["weights"])
    missing, unexpected = net.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"{directory / cfg['weights']}: weights do not fit the network of {cfg_path} "
                         f"(missing {list(missing)[:3]}, unexpected {list(unexpected)[:3]})")
    net.to(device)
    prior = None
    if cfg.get("prior"):
        from neuralannot_cli.nets.prior import load_prior

        prior = load_prior(directory / cfg["prior"], device=device)
    body_model = load_body_model(cfg["model_type"], model_dir=model_dir or cfg.get("model_dir"), device=device)
    return Annotator(net, prior, body_model, cfg, device)
