"""The FLOP counter of bench_train_step.py against counts made by hand on tiny graphs."""

import pytest
import tensorflow as tf

from benchmarks import flops


def trace(fn, *specs):
    return tf.function(fn).get_concrete_function(*specs).graph


def test_forward_convolution_and_dense_count_two_flops_per_multiply_add():
    kernel = tf.Variable(tf.zeros([3, 3, 3, 4]))
    weights = tf.Variable(tf.zeros([256, 5]))

    def forward(x):
        features = tf.nn.conv2d(x, kernel, strides=1, padding="SAME")  # [2, 8, 8, 4]
        return tf.matmul(tf.reshape(features, [2, 256]), weights)  # [2, 5]

    counted = flops.count_graph_flops(trace(forward, tf.TensorSpec([2, 8, 8, 3])))
    # Conv: 2 images x 8x8 outputs x 4 filters x (3x3x3) multiply-adds, 2 FLOPs each.
    assert counted.by_type["Conv2D"] == 2 * (2 * 8 * 8 * 4 * 27) == 27_648
    # Dense: 2 rows x 5 outputs x 256 multiply-adds.
    assert counted.by_type["MatMul"] == 2 * (2 * 5 * 256) == 5_120
    assert counted.contraction == 27_648 + 5_120
    assert not counted.dead and not counted.calls


def test_a_training_step_counts_the_gradients_that_run_and_not_the_pruned_one():
    kernel = tf.Variable(tf.zeros([3, 3, 3, 4]))
    weights = tf.Variable(tf.zeros([256, 5]))

    def step(x):
        with tf.GradientTape() as tape:
            features = tf.nn.conv2d(x, kernel, strides=1, padding="SAME")
            loss = tf.reduce_sum(tf.matmul(tf.reshape(features, [2, 256]), weights))
        kernel_grad, weights_grad = tape.gradient(loss, [kernel, weights])
        kernel.assign_sub(kernel_grad)
        weights.assign_sub(weights_grad)
        return loss  # as a train step reports it: else the forward matmul would be pruned too

    counted = flops.count_graph_flops(trace(step, tf.TensorSpec([2, 8, 8, 3])))
    conv, dense = 27_648, 5_120
    # Forward conv and its filter gradient; forward matmul, its weight and input gradients.
    assert counted.by_type["Conv2D"] == conv
    assert counted.by_type["Conv2DBackpropFilter"] == conv
    assert counted.by_type["MatMul"] == 3 * dense
    assert counted.contraction == 2 * conv + 3 * dense
    # The image's gradient is built by the tape but nothing uses it: grappler prunes it.
    assert "Conv2DBackpropInput" not in counted.by_type
    assert counted.dead["Conv2DBackpropInput"] == conv
    # The profiler counts it (and the elementwise ops) all the same.
    assert flops.profiler_flops(trace(step, tf.TensorSpec([2, 8, 8, 3]))) > counted.total + conv - 1


def test_backprops_of_a_valid_convolution_count_the_forward_work():
    # A DCGAN discriminator's last layer: a 4x4 "VALID" convolution of a 4x4 map, output 1x1.
    kernel = tf.Variable(tf.zeros([4, 4, 8, 1]))

    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.nn.conv2d(x, kernel, strides=1, padding="VALID"))
        return loss, tape.gradient(loss, [x, kernel])

    counted = flops.count_graph_flops(trace(step, tf.TensorSpec([2, 4, 4, 8])))
    forward = 2 * (2 * 1 * 1 * 1 * (4 * 4 * 8))  # 2 images x 1 output x 128 multiply-adds
    assert counted.by_type["Conv2D"] == forward == 512
    # TensorFlow's own formulas would say 16x this (input size / strides, as under "SAME").
    assert counted.by_type["Conv2DBackpropInput"] == forward
    assert counted.by_type["Conv2DBackpropFilter"] == forward


def test_transposed_convolution_counts_each_input_pixel_times_the_kernel():
    kernel = tf.Variable(tf.zeros([4, 4, 3, 6]))  # [kh, kw, out channels, in channels]

    def up(x):
        return tf.nn.conv2d_transpose(x, kernel, [2, 8, 8, 3], strides=2, padding="SAME")

    counted = flops.count_graph_flops(trace(up, tf.TensorSpec([2, 4, 4, 6])))
    # Each of 2x4x4 input pixels x 6 channels scatters a 4x4x3 kernel.
    assert counted.by_type["Conv2DBackpropInput"] == 2 * (2 * 4 * 4 * 6 * 4 * 4 * 3) == 18_432


def test_a_shape_that_is_not_static_is_an_error_naming_the_op():
    kernel = tf.Variable(tf.zeros([3, 3, 3, 4]))

    def forward(x):
        return tf.nn.conv2d(x, kernel, strides=1, padding="SAME")

    with pytest.raises(ValueError, match="Conv2D"):
        flops.count_graph_flops(trace(forward, tf.TensorSpec([None, 8, 8, 3])))


def test_a_contraction_without_a_formula_is_an_error_not_a_short_count():
    weights = tf.Variable(tf.zeros([8, 5]))

    def forward(x):
        return tf.einsum("bi,io->bo", x, weights)

    with pytest.raises(ValueError, match="Einsum"):
        flops.count_graph_flops(trace(forward, tf.TensorSpec([2, 8])))
