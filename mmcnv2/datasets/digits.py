"""scikit-learn's handwritten digits as a CIFAR-shaped classification set."""
import numpy as np
from mmengine.dataset import BaseDataset

from ..registry import register


@register('DATASETS', codebases=('mmpretrain', ))
class SklearnDigits(BaseDataset):
    """The 1797 real 8x8 handwritten digits of scikit-learn (UCI), upsampled.

    Images are scaled to 0..255, resized to ``size`` x ``size`` (bilinear)
    and repeated to three channels; a fixed, stratified split puts
    ``test_fraction`` of every class in ``'test'``. The data ships inside
    scikit-learn, so nothing is downloaded.

    Args:
        split (str): ``'train'`` or ``'test'``.
        size (int): Output image size. Defaults to 32.
        test_fraction (float): Share of each class held out. Defaults to 0.2.
        seed (int): Seed of the split. Defaults to 0.
        **kwargs: ``pipeline``, ``test_mode`` ... of
            :class:`mmengine.dataset.BaseDataset`.

    Example:
        >>> ds = SklearnDigits(split='test')
        >>> len(ds), ds[0]['img'].shape
        (359, (32, 32, 3))
    """

    METAINFO = dict(classes=tuple(str(i) for i in range(10)))

    def __init__(self, split: str = 'train', size: int = 32, test_fraction: float = 0.2,
                 seed: int = 0, **kwargs):
        if split not in ('train', 'test'):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        if not 0 < test_fraction < 1:
            raise ValueError(f'test_fraction must be in (0, 1), got {test_fraction!r}')
        self.split, self.size, self.test_fraction, self.seed = split, size, test_fraction, seed
        super().__init__(ann_file='', data_root='', **kwargs)

    def load_data_list(self):
        import mmcv
        from sklearn.datasets import load_digits

        digits = load_digits()
        rng = np.random.RandomState(self.seed)
        test = np.zeros(len(digits.target), dtype=bool)
        for label in range(10):
            idx = np.flatnonzero(digits.target == label)
            rng.shuffle(idx)
            test[idx[:int(round(len(idx) * self.test_fraction))]] = True
        chosen = np.flatnonzero(test if self.split == 'test' else ~test)
        data = []
        for i in chosen:
            img = (digits.images[i] * (255.0 / 16.0)).astype(np.float32)
            img = mmcv.imresize(img, (self.size, self.size), interpolation='bilinear')
            img = np.repeat(np.clip(img, 0, 255).astype(np.uint8)[:, :, None], 3, axis=2)
            data.append(dict(img=img, gt_label=int(digits.target[i])))
        return data
