"""rqvae_lib.modules: the Encoder and Decoder MLPs."""

from __future__ import annotations

import torch

from rqvae_lib import Decoder, Encoder


def test_encoder_decoder_accept_one_width_or_tigers_list():
    x = torch.randn(5, 384)
    assert Encoder(384, 512, 32)(x).shape == (5, 32)
    enc, dec = Encoder(384, [512, 256, 128], 32), Decoder(32, [512, 256, 128], 384)
    widths = [m.out_features for m in enc.net if isinstance(m, torch.nn.Linear)]
    assert widths == [512, 256, 128, 32]
    assert [m.out_features for m in dec.net if isinstance(m, torch.nn.Linear)] == [
        128,
        256,
        512,
        384,
    ]
    assert dec(enc(x)).shape == (5, 384)
