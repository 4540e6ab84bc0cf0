"""Every segmenter leaves pixels without data (NaN: zero weight, masked bits) unlabelled: the
frame gives them NaN, and this checks that each method treats NaN as "no data", not as a value."""
import numpy as np
import pytest
from test_segmenter_contract import METHODS, QUICK

from napari_galseg import segmenters
from napari_galseg.synth import make_field


@pytest.mark.parametrize("name", METHODS)
def test_a_nan_stripe_is_never_labelled(name):
    train, test = make_field(128, seed=1), make_field(128, seed=2)
    segmenter = segmenters.get(name)(**QUICK.get(name, {}))
    if segmenter.capabilities.trainable:
        segmenter.fit(train.image, train.truth, train.rms)
    image, rms = test.image.copy(), test.rms.copy()
    stripe = (slice(40, 70), slice(None))
    image[stripe] = np.nan
    rms[stripe] = np.nan
    labels = np.asarray(segmenter.predict(image, rms).labels)
    assert not labels[stripe].any()
