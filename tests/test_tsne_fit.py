"""t-SNE as embdeck fits it (pipeline/methods/tsne_fit.py): the gradient method by N, and openTSNE built against FFTW by
`make install`."""

import pytest

from pipeline.methods import tsne_fit as tsne


def test_tsne_method_by_n():
    assert tsne.gradient_method("auto", 2_000, 30_000) == "bh"
    assert tsne.gradient_method("auto", 70_000, 30_000) == "fft"
    assert tsne.gradient_method("bh", 70_000, 30_000) == "bh"
    with pytest.raises(Exception, match="auto, fft or bh"):
        tsne.gradient_method("exact", 10, 30_000)


def test_install_builds_opentsne_against_fftw():
    # make install builds openTSNE from source against Debian's FFTW; its wheel would fall back to a slower FFT.
    assert tsne.fft_library() == "FFTW"
