"""MediaPipe backend on real photos shipped in PyPI packages, against regions set by hand by looking at them.

astronaut (skimage, 512x512, Eileen Collins facing the camera) and grace_hopper.jpg (matplotlib sample, 512x600,
facing the camera). A front-facing subject's left is on the image right, so a mirrored mapping fails here.
Boxes are (x0, y0, x1, y1) px, generous around the part as seen in the image.
"""

import numpy as np
import pytest

pytest.importorskip("mediapipe")

from aistpp.detect import MediaPipeConfig, MediaPipeDetector  # noqa: E402
from aistpp.errors import AistppError  # noqa: E402
from aistpp.skeleton import INDEX  # noqa: E402

REGIONS = {
    "astronaut": {
        "nose": (200, 110, 245, 150),
        "right_eye": (185, 90, 225, 125),    # image left
        "left_eye": (230, 90, 270, 130),     # image right
        "right_shoulder": (60, 200, 160, 290),
        "left_shoulder": (270, 200, 360, 300),
    },
    "grace_hopper": {
        "nose": (240, 200, 295, 265),
        "right_eye": (195, 165, 260, 220),
        "left_eye": (275, 165, 340, 220),
        "right_shoulder": (30, 360, 170, 480),
        "left_shoulder": (370, 360, 500, 480),
    },
}


def load_photo(name):
    if name == "astronaut":
        skdata = pytest.importorskip("skimage.data")
        return skdata.astronaut()
    cbook = pytest.importorskip("matplotlib.cbook")
    cv2 = pytest.importorskip("cv2")
    path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    return cv2.imread(str(path))[..., ::-1].copy()


@pytest.fixture(scope="module")
def detector():
    with MediaPipeDetector(MediaPipeConfig(static_image_mode=True)) as det:
        yield det


@pytest.mark.parametrize("name", sorted(REGIONS))
def test_face_and_shoulders_land_on_the_person(detector, name):
    img = load_photo(name)
    kp, score = detector(img[None])
    assert kp.shape == (1, 17, 3) and kp.dtype == np.float32 and score.shape == (1,)
    assert 0.3 < score[0] <= 1  # mean visibility of the 17 points; legs are out of frame in both photos
    for joint, (x0, y0, x1, y1) in REGIONS[name].items():
        x, y, c = kp[0, INDEX[joint]]
        assert x0 <= x <= x1 and y0 <= y <= y1, f"{name} {joint} at ({x:.0f}, {y:.0f}) not in {(x0, y0, x1, y1)}"
        assert c > 0.5
    # subject's left on the image right
    assert kp[0, INDEX["left_shoulder"], 0] > kp[0, INDEX["right_shoulder"], 0]


def test_batch_with_empty_frame(detector):
    img = load_photo("astronaut")
    frames = np.stack([img, np.zeros_like(img), img])
    kp, score = detector(frames)
    assert np.isnan(kp[1]).all() and score[1] == 0
    np.testing.assert_allclose(kp[0], kp[2], atol=1e-3)  # static mode: same image, same answer


def test_complexity_other_than_1_refused():
    for c in (0, 2):
        with pytest.raises(AistppError, match="model_complexity=1"):
            MediaPipeConfig(model_complexity=c)
