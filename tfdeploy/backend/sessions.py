"""A SavedModel loaded the way TF Serving loads it: a graph-mode ``Session`` with the server's session config.

TF Serving's ``SavedModelBundle`` imports the MetaGraph into a ``DirectSession`` built from the
platform config's ``ConfigProto`` (its inter-op thread pools included), runs the restore op and the
init op with ``RunOptions.inter_op_thread_pool`` set to ``session_run_load_threadpool_index`` when
one is configured, then serves requests through the signature's tensor names on pool 0.
:class:`ServingSession` does the same from Python; its outputs equal the Keras model's.

Example:
    >>> session = ServingSession("models/m/1", session_config, load_pool_index=1)   # doctest: +SKIP
    >>> session.run("serving_default", {"image": x})["probabilities"].shape
    (1, 10)
"""

from __future__ import annotations

import os
from typing import Any, Mapping

from tfdeploy.backend.imports import tf, tf_proto

TAGS = ("serve",)


def _loader_impl() -> Any:
    import importlib

    tf()
    return importlib.import_module("tensorflow.python.saved_model.loader_impl")


class ServingSession:
    """One SavedModel version in its own graph and ``tf.compat.v1.Session``, loaded like TF Serving does.

    Args:
        export_dir: The version directory.
        session_config: A ``tensorflow.ConfigProto`` (the platform config's ``session_config``),
            or ``None`` for TF's defaults.
        load_pool_index: Inter-op pool that runs the restore and init ops
            (``session_run_load_threadpool_index``), or ``None`` for the default pool.

    Attributes:
        signatures: ``{name: SignatureDef}`` of the ``serve`` MetaGraph.

    Example:
        >>> ServingSession("models/m/1").signatures["serving_default"].inputs["image"].dtype   # doctest: +SKIP
        1
    """

    def __init__(self, export_dir: str | os.PathLike, session_config: Any = None,
                 load_pool_index: int | None = None) -> None:
        export_dir = os.fspath(export_dir)
        loader_impl = _loader_impl()
        self.graph = tf().Graph()
        self.session = tf().compat.v1.Session(graph=self.graph, config=session_config)
        loader = loader_impl.SavedModelLoader(export_dir)
        meta_graph = loader.get_meta_graph_def_from_tags(list(TAGS))
        saver, _ = loader.load_graph(self.graph, list(TAGS))
        config_pb2 = tf_proto("config_pb2")
        options = config_pb2.RunOptions(inter_op_thread_pool=load_pool_index or 0)
        if saver is not None:
            variables = os.path.join(export_dir, "variables", "variables")
            self.session.run(saver.saver_def.restore_op_name, {saver.saver_def.filename_tensor_name: variables},
                             options=options)
        with self.graph.as_default():
            init_op = loader_impl.get_init_op(meta_graph)
            assets = loader_impl.get_asset_tensors(export_dir, meta_graph)
        if init_op is not None:
            self.session.run(init_op, assets, options=options)
        self.signatures = dict(meta_graph.signature_def)

    def run(self, signature_name: str, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """Runs one signature on named inputs (numpy arrays or TensorProtos) on the request pool.

        Example:
            >>> session.run("serving_default", {"image": x})      # doctest: +SKIP
        """
        signature = self.signatures[signature_name]
        feeds = {signature.inputs[key].name: _value(value) for key, value in inputs.items()}
        return self.session.run({key: info.name for key, info in signature.outputs.items()}, feeds)

    def close(self) -> None:
        """Unloads the version: closes the session and drops the graph (as TF Serving's unload does)."""
        self.session.close()
        self.session = self.graph = None


def _value(value: Any) -> Any:
    """A feed value: TensorProtos (warmup records) and eager tensors become arrays."""
    if hasattr(value, "tensor_shape"):
        return tf().make_ndarray(value)
    return value.numpy() if hasattr(value, "numpy") else value


def signature_io(signature: Any) -> Any:
    """A ``SignatureDef``'s named inputs and outputs as a :class:`~tfdeploy.io_spec.ModelIO`.

    Dimensions of unknown size (-1) become ``None``; the batch dimension is dropped.

    Example:
        >>> signature_io(session.signatures["serving_default"]).input_names     # doctest: +SKIP
        ['image']
    """
    from tfdeploy.backend.models import dtype_name
    from tfdeploy.io_spec import ModelIO, TensorInfo

    def info(key: str, tensor: Any) -> TensorInfo:
        dims = [d.size for d in tensor.tensor_shape.dim][1:]
        return TensorInfo(key, dtype_name(tf().dtypes.as_dtype(tensor.dtype)),
                          tuple(None if d < 0 else d for d in dims))

    return ModelIO(inputs=tuple(info(k, v) for k, v in sorted(signature.inputs.items())),
                   outputs=tuple(info(k, v) for k, v in sorted(signature.outputs.items())))
