"""mmcnv2's model zoo in OpenMMLab's model-index format, and its registration with mmpretrain.

``model-index.yml`` and ``configs/metafiles/*.yml`` (one metafile per model family, plus
one for the COCO detectors of the paper's Table 7, the families being
:data:`COLLECTIONS`) are generated from the paper's tables and the configs by
``python tools/model_index.py`` in a checkout (a test checks that the committed files
are the generated ones). Their results are the paper's, marked ``Results From: paper``:
no ImageNet or COCO training was run for this project, and no weights are published
with it, so no model has a ``Weights`` entry.

``mim`` reads ``model-index.yml`` from ``mmcnv2/.mim`` (``setup.py`` puts it there);
importing mmcnv2 registers the classifiers with mmpretrain's ``ModelHub``
(:func:`register_model_hub`), so that ``mmpretrain.list_models``, ``get_model`` and
``ImageClassificationInferencer`` know them by name. The detectors are listed for
``mim search`` only: mmpretrain's hub builds classifiers.
"""
import os.path as osp
from typing import List, NamedTuple, Optional, Tuple

import yaml

MODEL_INDEX = 'model-index.yml'
METAFILE_DIR = 'configs/metafiles'

CONDENSENET_V2_PAPER = ('CondenseNet V2: Sparse Feature Reactivation for Deep Networks',
                        'https://arxiv.org/abs/2104.04382')
CONDENSENET_PAPER = ('CondenseNet: An Efficient DenseNet using Learned Group Convolutions',
                     'https://arxiv.org/abs/1711.09224')
SHUFFLENET_V2_PAPER = ('ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture '
                       'Design', 'https://arxiv.org/abs/1807.11164')
MOBILENET_V2_PAPER = ('MobileNetV2: Inverted Residuals and Linear Bottlenecks',
                      'https://arxiv.org/abs/1801.04381')


class Collection(NamedTuple):
    """A model family: a ``Collection`` of the model index.

    ``mim search mmcnv2 --model <name in lower case>`` lists its models.
    """
    name: str
    backbone: str  # the backbone ``type`` of its configs
    architecture: Tuple[str, ...]
    paper: Optional[Tuple[str, str]]  # (title, URL)
    metafile: Optional[str] = None  # its classifiers' metafile (None: detectors only)
    code: Optional[str] = None  # reference code, where there is no paper


COLLECTIONS: Tuple[Collection, ...] = (
    Collection('CondenseNet-V2', 'CondenseNetV2',
               ('Learned Group Convolution', 'Sparse Feature Reactivation', 'Dense Connections'),
               CONDENSENET_V2_PAPER, f'{METAFILE_DIR}/condensenet_v2.yml'),
    Collection('SFR-ShuffleNet-V2', 'SFRShuffleNetV2',
               ('Sparse Feature Reactivation', 'Channel Shuffle', 'Depthwise Convolution'),
               CONDENSENET_V2_PAPER, f'{METAFILE_DIR}/sfr_shufflenet_v2.yml'),
    Collection('SFR-ShuffleNet-V2+', 'SFRShuffleNetV2Plus',
               ('Sparse Feature Reactivation', 'Channel Shuffle', 'Depthwise Convolution',
                'Squeeze-and-Excitation', 'Hard Swish'),
               CONDENSENET_V2_PAPER, f'{METAFILE_DIR}/sfr_shufflenet_v2_plus.yml'),
    Collection('CondenseNet', 'CondenseNet', ('Learned Group Convolution', 'Dense Connections'),
               CONDENSENET_PAPER, f'{METAFILE_DIR}/condensenet.yml'),
    Collection('ShuffleNet-V2+', 'ShuffleNetV2Plus',
               ('Channel Shuffle', 'Depthwise Convolution', 'Squeeze-and-Excitation',
                'Hard Swish'), None, f'{METAFILE_DIR}/shufflenet_v2_plus.yml',
               'https://github.com/megvii-model/ShuffleNet-Series/tree/master/ShuffleNetV2%2B'),
    # backbones of the paper's detection baselines (mmpretrain's and mmdet's)
    Collection('ShuffleNet-V2', 'mmpretrain.ShuffleNetV2',
               ('Channel Shuffle', 'Depthwise Convolution'), SHUFFLENET_V2_PAPER),
    Collection('MobileNet-V2', 'MobileNetV2', ('Inverted Residual', 'Depthwise Convolution'),
               MOBILENET_V2_PAPER),
)

def model_index_root() -> Optional[str]:
    """Where ``model-index.yml`` and the configs it names are, or None.

    The package's ``.mim`` folder (which ``setup.py`` fills on every install), else
    the source checkout that holds the package (a clone used without installing).
    """
    package = osp.dirname(osp.abspath(__file__))
    for root in (osp.join(package, '.mim'), osp.dirname(package)):
        if osp.isfile(osp.join(root, MODEL_INDEX)):
            return root
    return None


def register_model_hub() -> List[str]:
    """Register the model zoo's classifiers with mmpretrain's ``ModelHub``.

    Importing mmcnv2 calls this; calling it again changes nothing. Config paths
    resolve against :func:`model_index_root`.

    Returns:
        list[str]: The metafiles registered by this call.

    Example:
        >>> import mmpretrain
        >>> import mmcnv2
        >>> 'cnv2-a_8xb128_in1k' in mmpretrain.list_models('*cnv2*')
        True
        >>> register_model_hub()  # already registered on import
        []
    """
    from mmpretrain.apis import ModelHub

    root = model_index_root()
    if root is None:
        return []
    registered = []
    for collection in COLLECTIONS:
        if collection.metafile is None:
            continue
        path = osp.join(root, collection.metafile)
        with open(path) as f:
            names = [m['Name'].lower() for m in yaml.safe_load(f)['Models']]
        if all(ModelHub.has(name) for name in names):
            continue
        ModelHub.register_model_index(path, config_prefix=root)
        registered.append(path)
    return registered
