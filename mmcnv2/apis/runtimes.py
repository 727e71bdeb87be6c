"""Run an ONNX file on the CPU in ONNX Runtime or OpenVINO, through one session interface.

:func:`open_session` compiles a file in either runtime and returns an
:class:`OnnxSession`: ``input_names``, ``output_names`` and ``run(feeds)``
giving the outputs as NumPy arrays in the graph's order, so that checks
(:func:`mmcnv2.apis.export.verify_onnx`) and timings (``tools/benchmark.py``)
treat both runtimes alike. Both run the graph in float32 (OpenVINO's CPU plugin
would otherwise pick bf16 on CPUs that have it) and take a thread count.
"""
from typing import Dict, List, Optional, Sequence

import numpy as np

#: The runtimes :func:`open_session` knows.
RUNTIMES = ('onnxruntime', 'openvino')


class OnnxSession:
    """A compiled ONNX file: its input and output names and ``run``.

    Subclasses wrap one runtime's compiled model; make them with
    :func:`open_session`.
    """

    #: The runtime's name (one of :data:`RUNTIMES`).
    runtime: str = ''

    @property
    def input_names(self) -> List[str]:
        raise NotImplementedError

    @property
    def output_names(self) -> List[str]:
        raise NotImplementedError

    def run(self, feeds: Dict[str, np.ndarray]) -> List[np.ndarray]:
        """The graph's outputs, in its order, for ``feeds`` (input name -> array)."""
        raise NotImplementedError


class OnnxRuntimeSession(OnnxSession):
    """An ONNX Runtime CPU session (:func:`onnxruntime_session`)."""

    runtime = 'onnxruntime'

    def __init__(self, path: str, threads: int = 0, inter_op_threads: Optional[int] = None):
        self.session = onnxruntime_session(path, threads, inter_op_threads)

    @property
    def input_names(self) -> List[str]:
        return [i.name for i in self.session.get_inputs()]

    @property
    def output_names(self) -> List[str]:
        return [o.name for o in self.session.get_outputs()]

    def run(self, feeds: Dict[str, np.ndarray]) -> List[np.ndarray]:
        return self.session.run(None, feeds)


class OpenVINOSession(OnnxSession):
    """An OpenVINO CPU compiled model of an ONNX file, in float32, latency mode.

    ``threads`` sets ``INFERENCE_NUM_THREADS`` (0: OpenVINO's default, one per
    physical core); ``INFERENCE_PRECISION_HINT`` is ``f32`` so that results
    match PyTorch's to float32 rounding on every CPU. A quantized (QDQ) graph
    still runs its quantized operators in int8.
    """

    runtime = 'openvino'

    def __init__(self, path: str, threads: int = 0):
        import openvino as ov

        config = {'INFERENCE_PRECISION_HINT': 'f32', 'PERFORMANCE_HINT': 'LATENCY',
                  'NUM_STREAMS': 1}
        if threads:
            config['INFERENCE_NUM_THREADS'] = threads
        self.model = ov.Core().compile_model(path, 'CPU', config)
        self.request = self.model.create_infer_request()

    @property
    def input_names(self) -> List[str]:
        return [i.get_any_name() for i in self.model.inputs]

    @property
    def output_names(self) -> List[str]:
        return [o.get_any_name() for o in self.model.outputs]

    def run(self, feeds: Dict[str, np.ndarray]) -> List[np.ndarray]:
        results = self.request.infer(feeds)
        # copies: the request reuses its output buffers on the next run
        return [np.array(results[o]) for o in self.model.outputs]


def onnxruntime_session(path: str, intra_op_threads: int = 0,
                        inter_op_threads: Optional[int] = None):
    """An onnxruntime CPU session (``onnxruntime.InferenceSession``) of the ONNX file ``path``.

    Args:
        path (str): The ``.onnx`` file.
        intra_op_threads (int): ``intra_op_num_threads``; 0: onnxruntime's
            default, one per physical core.
        inter_op_threads (int, optional): ``inter_op_num_threads``; None:
            onnxruntime's default.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    if inter_op_threads is not None:
        options.inter_op_num_threads = inter_op_threads
    return ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])


def check_runtimes(runtimes: Sequence[str]) -> List[str]:
    """``runtimes`` as a list, or ``ValueError`` naming the unknown ones.

    Example:
        >>> check_runtimes(('openvino', ))
        ['openvino']
        >>> check_runtimes(['tensorrt'])
        Traceback (most recent call last):
        ...
        ValueError: runtime must be among ('onnxruntime', 'openvino'), got ['tensorrt']
    """
    runtimes = [runtimes] if isinstance(runtimes, str) else list(runtimes)
    bad = [r for r in runtimes if r not in RUNTIMES]
    if bad or not runtimes:
        raise ValueError(f'runtime must be among {RUNTIMES}, got {bad or runtimes}')
    return runtimes


def open_session(path: str, runtime: str = 'onnxruntime', threads: int = 0) -> OnnxSession:
    """Compile the ONNX file ``path`` for the CPU in ``runtime``.

    Args:
        path (str): The ``.onnx`` file.
        runtime (str): ``'onnxruntime'`` or ``'openvino'``.
        threads (int): Threads of one inference (ORT's ``intra_op_num_threads``,
            OpenVINO's ``INFERENCE_NUM_THREADS``); 0: the runtime's default.
            ORT then runs the graph's nodes one after another
            (``inter_op_num_threads`` 1), as OpenVINO's latency mode does.

    Returns:
        OnnxSession: ``run(feeds)`` gives the outputs in the graph's order.

    Example:
        >>> import os, tempfile, onnx
        >>> from onnx import TensorProto, helper
        >>> info = lambda n: helper.make_tensor_value_info(n, TensorProto.FLOAT, [2])
        >>> graph = helper.make_graph([helper.make_node('Relu', ['x'], ['y'])], 'g',
        ...                           [info('x')], [info('y')])
        >>> path = os.path.join(tempfile.mkdtemp(), 'relu.onnx')
        >>> onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)]),
        ...           path)
        >>> x = {'x': np.array([-1., 2.], np.float32)}
        >>> [open_session(path, r, threads=1).run(x)[0].tolist() for r in RUNTIMES]
        [[0.0, 2.0], [0.0, 2.0]]
    """
    runtime, = check_runtimes([runtime])
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise ValueError(f'threads must be an int >= 0 (0: the runtime default), got {threads!r}')
    if runtime == 'openvino':
        return OpenVINOSession(path, threads)
    return OnnxRuntimeSession(path, threads, inter_op_threads=1)
