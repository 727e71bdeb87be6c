"""Detection inference on images, visualised, through mmdet's ``DetInferencer``."""
import copy
import os
from typing import Sequence

from mmengine.config import Config

from ..checkpoint.files import check_state_dict_fits, read_checkpoint, state_dict_of
from .runner import match_checkpoint_form


def infer_images(config, checkpoint: str, images: Sequence[str], out_dir: str,
                 score_thr: float = 0.3, device: str = 'cpu', batch_size: int = 1) -> dict:
    """Run a detector on ``images``; write visualised detections and predictions.

    Args:
        config (str | Config): Detection config (mmcnv2's or any mmdet config);
            its model is built in the form (training or deploy) the
            checkpoint holds.
        checkpoint (str): Its checkpoint (loaded with ``weights_only=True``);
            it must fit the model exactly.
        images (Sequence[str]): Image files or folders.
        out_dir (str): Pictures go to ``out_dir/vis``, json predictions to
            ``out_dir/preds``.
        score_thr (float): Boxes below this score are not drawn.
        device (str): ``'cpu'``, ``'cuda'``, ``'cuda:0'``...
        batch_size (int): Images per forward pass.

    Returns:
        dict: DetInferencer's result (``predictions``, ``visualization``).
    """
    from mmdet.apis import DetInferencer

    for path in images:
        if not os.path.exists(path):
            raise FileNotFoundError(f'image or folder not found: {path}')
    if not 0 <= score_thr <= 1:
        raise ValueError(f'score_thr must be in [0, 1], got {score_thr}')
    cfg = copy.deepcopy(config) if isinstance(config, Config) else Config.fromfile(config)
    ckpt = read_checkpoint(checkpoint)
    match_checkpoint_form(cfg, ckpt, source=checkpoint)
    inferencer = DetInferencer(model=cfg, weights=checkpoint, device=device, show_progress=False)
    check_state_dict_fits(inferencer.model, state_dict_of(ckpt), checkpoint)
    inputs = list(images) if len(images) > 1 else images[0]
    return inferencer(inputs, out_dir=out_dir, pred_score_thr=score_thr, batch_size=batch_size,
                      no_save_pred=False)
