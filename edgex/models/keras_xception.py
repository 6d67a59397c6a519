"""Xception in Keras with width and depth multipliers, for fast tests with the real block structure.

Same modules as Chollet's Xception (and `keras.applications.Xception`): entry flow with two
plain 3x3 convs and three separable blocks with strided 1x1 residuals and max-pooling, middle
flow of identical three-separable-conv blocks with identity residuals, exit flow, global
average pooling and a dense head producing logits.
"""

from __future__ import annotations


def build_xception(input_size: int | tuple = 96, classes: int = 4, width: float = 0.125, middle_blocks: int = 8,
                   name: str = "tiny_xception"):
    """`input_size`: N, (H, W), or (None, None) for a free spatial size."""
    import keras
    from keras import layers

    def ch(n: int) -> int:
        return max(8, int(round(n * width / 8)) * 8)

    def sep(x, filters, prefix, relu_first=True):
        if relu_first:
            x = layers.Activation("relu", name=f"{prefix}_act")(x)
        x = layers.SeparableConv2D(filters, 3, padding="same", use_bias=False, name=prefix)(x)
        return layers.BatchNormalization(name=f"{prefix}_bn")(x)

    def strided_block(x, filters, prefix, relu_first=True):
        residual = layers.Conv2D(filters, 1, strides=2, padding="same", use_bias=False, name=f"{prefix}_res")(x)
        residual = layers.BatchNormalization(name=f"{prefix}_res_bn")(residual)
        x = sep(x, filters[0] if isinstance(filters, tuple) else filters, f"{prefix}_sep1", relu_first)
        x = sep(x, filters, f"{prefix}_sep2")
        x = layers.MaxPooling2D(3, strides=2, padding="same", name=f"{prefix}_pool")(x)
        return layers.add([x, residual], name=f"{prefix}_add")

    height, width_px = input_size if isinstance(input_size, tuple) else (input_size, input_size)
    inputs = keras.Input((height, width_px, 3), name="image")
    x = layers.Conv2D(ch(32), 3, strides=2, use_bias=False, name="block1_conv1")(inputs)
    x = layers.BatchNormalization(name="block1_conv1_bn")(x)
    x = layers.Activation("relu", name="block1_conv1_act")(x)
    x = layers.Conv2D(ch(64), 3, use_bias=False, name="block1_conv2")(x)
    x = layers.BatchNormalization(name="block1_conv2_bn")(x)
    x = layers.Activation("relu", name="block1_conv2_act")(x)
    x = strided_block(x, ch(128), "block2", relu_first=False)
    x = strided_block(x, ch(256), "block3")
    x = strided_block(x, ch(728), "block4")
    for i in range(middle_blocks):
        residual = x
        for j in range(3):
            x = sep(x, ch(728), f"block{5 + i}_sep{j + 1}")
        x = layers.add([x, residual], name=f"block{5 + i}_add")
    exit_prefix = f"block{5 + middle_blocks}"
    residual = layers.Conv2D(ch(1024), 1, strides=2, padding="same", use_bias=False, name=f"{exit_prefix}_res")(x)
    residual = layers.BatchNormalization(name=f"{exit_prefix}_res_bn")(residual)
    x = sep(x, ch(728), f"{exit_prefix}_sep1")
    x = sep(x, ch(1024), f"{exit_prefix}_sep2")
    x = layers.MaxPooling2D(3, strides=2, padding="same", name=f"{exit_prefix}_pool")(x)
    x = layers.add([x, residual], name=f"{exit_prefix}_add")
    last = f"block{6 + middle_blocks}"
    x = sep(x, ch(1536), f"{last}_sep1", relu_first=False)
    x = layers.Activation("relu", name=f"{last}_sep1_act")(x)
    x = sep(x, ch(2048), f"{last}_sep2", relu_first=False)
    x = layers.Activation("relu", name=f"{last}_sep2_act")(x)
    features = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    logits = layers.Dense(classes, name="logits")(features)
    return keras.Model(inputs, logits, name=name)
