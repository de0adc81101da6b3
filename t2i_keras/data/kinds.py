"""The datasets and resize policies the data modules accept, without importing TensorFlow.

`splits.load_split` and `prepared.read_source` dispatch on `DATASETS`, `images.resize_image` on
`RESIZE_POLICIES`; `t2i_keras.config` validates against both.
"""

# The built-in procedural flowers (generated in memory, `flowers`) ...
BUILTIN_DATASETS = ("flowers",)
# ... and the real datasets read from disk and prepared once (`prepared.read_source`).
REAL_DATASETS = ("oxford102", "cub", "coco", "folder")
DATASETS = BUILTIN_DATASETS + REAL_DATASETS
# "center_crop" and "pad" for any image; "bbox" crops to the object box enlarged 1.5x (StackGAN),
# where the dataset has boxes (CUB).
RESIZE_POLICIES = ("center_crop", "pad", "bbox")
