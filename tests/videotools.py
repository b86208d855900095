"""Test videos whose frames carry their own index (8 binary stripes), so alignment can be checked by reading pixels."""

import numpy as np


def stripes(index: int, width: int, height: int) -> np.ndarray:
    """An RGB frame showing ``index`` (0..255) as 8 vertical black/white stripes, least significant bit left."""
    img = np.zeros((height, width, 3), np.uint8)
    sw = width // 8
    for k in range(8):
        if (index >> k) & 1:
            img[:, k * sw:(k + 1) * sw] = 255
    img[:, :, 1] //= 2  # not grey: an R/B swap would show
    return img


def read_stripes(img: np.ndarray) -> int:
    """The index shown by a (decoded, lossy) :func:`stripes` frame."""
    h, w = img.shape[:2]
    sw = w // 8
    bits = [img[h // 4:3 * h // 4, k * sw + sw // 4:(k + 1) * sw - sw // 4, 0].mean() > 127 for k in range(8)]
    return int(sum(b << k for k, b in enumerate(bits)))
