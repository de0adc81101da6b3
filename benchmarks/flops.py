"""Floating-point operations of a traced TensorFlow graph, counted op by op (bench_train_step.py).

Each op's count comes from the statistics TensorFlow registers for its graph profiler
(`tf.compat.v1.profiler`, `ops.RegisterStatistics(op_type, "flops")`): Conv2D and its two
backprop ops, MatMul and BatchMatMul at 2 FLOPs per multiply-add, elementwise ops at one per
element. Two corrections to the profiler:

- Only ops that run are counted. `GradientTape` builds the gradients of every input of an op
  (Conv2D's `_Conv2DGrad` returns the input's gradient even when the input is an image that
  needs none) and grappler prunes the unused ones before the graph runs, so an op counts only
  when a function output or a side effect (a variable update) depends on it.
- Convolution backprops are counted from the gradient they propagate. TensorFlow's formulas for
  Conv2DBackpropInput/Filter divide the input's size by the strides, which is the output's size
  only under "SAME" padding: a "VALID" 4x4 convolution of a 4x4 map (a DCGAN discriminator's
  last layer, whose output is 1x1) is counted 16 times over. The work of either backprop is that
  of the forward convolution, 2 x (elements of the output gradient) x kh x kw x C_in, whatever
  the padding; PyTorch's FlopCounterMode counts the same.
"""

from __future__ import annotations

import collections
import dataclasses

import tensorflow as tf
from tensorflow.python.framework import ops as tf_ops

# The ops that do a GEMM's work (what a matmul peak bounds); the rest are memory-bound.
CONTRACTION_OPS = frozenset(
    {
        "Conv2D",
        "Conv2DBackpropInput",
        "Conv2DBackpropInputV2",
        "Conv2DBackpropFilter",
        "Conv3D",
        "DepthwiseConv2dNative",
        "MatMul",
        "BatchMatMul",
        "BatchMatMulV2",
        "BatchMatMulV3",
    }
)
# Ops that do a GEMM's work but have no count, here or in TensorFlow's registry: a graph that
# runs one cannot be counted (rather than be counted short).
UNCOUNTED_CONTRACTION_OPS = frozenset(
    {
        "Einsum",
        "DepthwiseConv2dNativeBackpropInput",
        "DepthwiseConv2dNativeBackpropFilter",
        "Conv3DBackpropInputV2",
        "Conv3DBackpropFilterV2",
        "Conv2DBackpropFilterV2",
    }
)
# Ops that run another function: whatever their bodies compute is not counted here.
CALL_OPS = frozenset(
    {
        "PartitionedCall",
        "StatefulPartitionedCall",
        "If",
        "StatelessIf",
        "While",
        "StatelessWhile",
        "Case",
        "StatelessCase",
    }
)


@dataclasses.dataclass
class GraphFlops:
    """FLOPs per op type of the ops that run, and what was left out.

    Attributes:
        by_type: op type -> FLOPs of its ops that run.
        dead: op type -> FLOPs of ops whose results nothing uses (pruned before running).
        calls: names of the function-call ops, whose bodies are not counted.
    """

    by_type: dict[str, int]
    dead: dict[str, int]
    calls: list[str]

    @property
    def total(self) -> int:
        return sum(self.by_type.values())

    @property
    def contraction(self) -> int:
        """FLOPs of convolutions and matrix products (forward and backward)."""
        return sum(v for k, v in self.by_type.items() if k in CONTRACTION_OPS)


def live_operations(graph: tf.Graph) -> set[tf.Operation]:
    """The ops that a function output or a side effect depends on, through data or control."""
    if isinstance(graph, tf.__internal__.FuncGraph):
        roots = [t.op for t in graph.outputs] + list(graph.control_outputs)
    else:  # a plain graph: everything that has no consumer is a root
        roots = [op for op in graph.get_operations() if not any(t.consumers() for t in op.outputs)]
    live, stack = set(), list(roots)
    while stack:
        op = stack.pop()
        if op in live:
            continue
        live.add(op)
        stack.extend(t.op for t in op.inputs)
        stack.extend(op.control_inputs)
    return live


# Their inputs: (input or its sizes, filter or its sizes, output gradient).
CONV_BACKPROP_OPS = frozenset(
    {"Conv2DBackpropInput", "Conv2DBackpropInputV2", "Conv2DBackpropFilter"}
)


def conv_backprop_flops(op: tf.Operation) -> int:
    """2 x (output-gradient elements) x kh x kw x C_in: the forward convolution's multiply-adds."""
    out_backprop = op.inputs[2].shape
    kernel = op.outputs[0].shape if op.type == "Conv2DBackpropFilter" else op.inputs[1].shape
    if not (out_backprop.is_fully_defined() and kernel.is_fully_defined()):
        raise ValueError(f"cannot count {op.type} {op.name!r}: shapes {out_backprop}, {kernel}")
    return 2 * out_backprop.num_elements() * kernel.num_elements() // kernel[-1]


def op_flops(graph: tf.Graph, op: tf.Operation) -> int | None:
    """The op's FLOPs as TensorFlow's profiler counts them (convolution backprops corrected, see
    the module docstring); None when it registers no count."""
    if op.type in CONV_BACKPROP_OPS:
        return conv_backprop_flops(op)
    try:
        stats = tf_ops.get_stats_for_node_def(graph, op.node_def, "flops")
    except ValueError as error:  # a shape that is not fully defined
        raise ValueError(f"cannot count {op.type} {op.name!r}: {error}") from error
    return None if stats.value is None else int(stats.value)


def count_graph_flops(graph: tf.Graph) -> GraphFlops:
    """FLOPs per op type of the ops of `graph` that run (see the module docstring).

    Shapes must be static (trace with a fixed batch size); a `ValueError` names an op whose
    shapes are not.
    """
    live = live_operations(graph)
    by_type, dead = collections.Counter(), collections.Counter()
    calls = []
    for op in graph.get_operations():
        if op.type in CALL_OPS and op in live:
            calls.append(op.name)
        if op.type in UNCOUNTED_CONTRACTION_OPS and op in live:
            raise ValueError(f"cannot count {op.type} {op.name!r}: no FLOP formula for it")
        flops = op_flops(graph, op)
        if flops is None:
            continue
        (by_type if op in live else dead)[op.type] += flops
    return GraphFlops(dict(by_type), dict(dead), calls)


def profiler_flops(graph: tf.Graph) -> int:
    """TensorFlow's graph profiler's total, as it counts (every op, pruned or not; its own
    convolution-backprop formulas)."""
    options = (
        tf.compat.v1.profiler.ProfileOptionBuilder(
            tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
        )
        .with_empty_output()
        .build()
    )
    return int(tf.compat.v1.profiler.profile(graph, options=options).total_float_ops)
