"""VGGish / PANNs / CLAP adapters: no weights -> a clear error; the reference checkpoints' key layouts
(written out here from the reference code) load; features match slow formulas; outputs have the
documented sizes. Real checkpoints are not available offline, so weights are random here."""

import numpy as np
import pytest
import torch

from arwave.evaluation.embedders import EmbedderError
from arwave.evaluation.embedders import adapters as AD
from arwave.evaluation.embedders.by_name import get_embedder


def bn(prefix, c):
    return {
        f"{prefix}.weight": (c,),
        f"{prefix}.bias": (c,),
        f"{prefix}.running_mean": (c,),
        f"{prefix}.running_var": (c,),
        f"{prefix}.num_batches_tracked": (),
    }


def torchvggish_layout():
    """harritaylor/torchvggish: VGG.features (Sequential indices) + embeddings + pproc (PCA)."""
    shapes = {}
    for i, (cin, cout) in zip(
        (0, 3, 6, 8, 11, 13), ((1, 64), (64, 128), (128, 256), (256, 256), (256, 512), (512, 512))
    ):
        shapes[f"features.{i}.weight"], shapes[f"features.{i}.bias"] = (cout, cin, 3, 3), (cout,)
    for i, (cin, cout) in zip((0, 2, 4), ((12288, 4096), (4096, 4096), (4096, 128))):
        shapes[f"embeddings.{i}.weight"], shapes[f"embeddings.{i}.bias"] = (cout, cin), (cout,)
    shapes["pproc.pca_matrix"], shapes["pproc.pca_means"] = (128, 128), (128, 1)
    return shapes


def cnn14_layout(prefix=""):
    """qiuqiangkong/audioset_tagging_cnn Cnn14 (with torchlibrosa's front end buffers)."""
    shapes = {
        "spectrogram_extractor.stft.conv_real.weight": (513, 1, 1024),
        "spectrogram_extractor.stft.conv_imag.weight": (513, 1, 1024),
        "logmel_extractor.melW": (513, 64),
        **bn("bn0", 64),
    }
    widths = [1, 64, 128, 256, 512, 1024, 2048]
    for i in range(6):
        p = f"conv_block{i + 1}"
        shapes[f"{p}.conv1.weight"] = (widths[i + 1], widths[i], 3, 3)
        shapes[f"{p}.conv2.weight"] = (widths[i + 1], widths[i + 1], 3, 3)
        shapes.update(bn(f"{p}.bn1", widths[i + 1]))
        shapes.update(bn(f"{p}.bn2", widths[i + 1]))
    shapes.update(
        {"fc1.weight": (2048, 2048), "fc1.bias": (2048,), "fc_audioset.weight": (527, 2048), "fc_audioset.bias": (527,)}
    )
    return {prefix + k: v for k, v in shapes.items()}


def random_state(shapes, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, s in shapes.items():
        if k.endswith("num_batches_tracked"):
            out[k] = torch.tensor(0)
        elif k.endswith("running_var"):
            out[k] = torch.ones(s)
        elif k.endswith("melW"):
            out[k] = torch.rand(s, generator=g) * 0.01
        else:
            fan_in = int(np.prod(s[1:])) if len(s) > 1 else 1
            out[k] = torch.randn(s, generator=g) / np.sqrt(fan_in)
    return out


@pytest.fixture
def fake_file(monkeypatch):
    """Serve a given state dict instead of reading a (300 MB) checkpoint."""

    def use(state):
        monkeypatch.setattr(AD, "load_state", lambda path, kind: state)
        monkeypatch.setattr(AD, "file_digest", lambda path: "test")

    return use


@pytest.mark.parametrize("name", ["vggish", "panns", "clap"])
def test_without_weights_the_error_names_the_file(name):
    with pytest.raises(EmbedderError, match="needs a local weight file") as err:
        get_embedder(name)
    assert {"vggish": "vggish-10086976.pth", "panns": "Cnn14_mAP=0.431.pth", "clap": "CLAP_weights_2022.pth"}[
        name
    ] in str(err.value)
    with pytest.raises(EmbedderError, match="no such weight file"):
        get_embedder(name, weights="/nonexistent/file.pth")


def test_weight_files_are_read_without_unpickling_code(tmp_path):
    state = {"a": torch.ones(2)}
    torch.save({"model": state, "iteration": 3}, tmp_path / "plain.pth")
    assert AD.load_state(tmp_path / "plain.pth", "panns").keys() == {"a"}
    from safetensors.torch import save_file

    save_file(state, str(tmp_path / "w.safetensors"))
    assert AD.load_state(tmp_path / "w.safetensors", "panns").keys() == {"a"}
    torch.save({"model": state, "obj": AD.WEIGHT_FILES.__class__.__mro__}, tmp_path / "code.pth")  # pickles classes
    with pytest.raises(EmbedderError, match="without unpickling"):
        AD.load_state(tmp_path / "code.pth", "panns")


def test_vggish_mel_matrix_matches_slow_loop():
    mel = lambda f: 1127.0 * np.log(1 + f / 700.0)
    edges = np.linspace(mel(125.0), mel(7500.0), 66)
    slow = np.zeros((257, 64))
    for k in range(1, 257):  # DC bin stays 0
        m = mel(k * 8000.0 / 256)
        for i in range(64):
            slow[k, i] = max(
                0.0, min((m - edges[i]) / (edges[i + 1] - edges[i]), (edges[i + 2] - m) / (edges[i + 2] - edges[i + 1]))
            )
    np.testing.assert_allclose(AD.vggish_mel_matrix().double().numpy(), slow, rtol=1e-5, atol=1e-7)


def test_vggish_loads_reference_layout_and_embeds(fake_file):
    fake_file(random_state(torchvggish_layout()))
    emb = get_embedder("vggish", weights="vggish-10086976.pth")
    x = torch.randn(1, 1, int(2.0 * 16000), generator=torch.Generator().manual_seed(0)) * 0.1
    ex = emb.examples(x[0, 0])
    assert ex.shape == (2, 96, 64)  # 198 frames of 10 ms -> 2 examples of 0.96 s
    # first frame by hand: 400 samples, periodic Hann, |rfft(512)|, mel, log(+0.01)
    frame = x[0, 0, :400].double().numpy() * (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(400) / 400))
    hand = np.log(np.abs(np.fft.rfft(frame, 512)) @ AD.vggish_mel_matrix().double().numpy() + 0.01)
    np.testing.assert_allclose(ex[0, 0].double().numpy(), hand, rtol=1e-4, atol=1e-5)
    out = emb.features(x, 16000)
    assert out.frames.shape == (2, 128) and out.posteriors is None and (out.frames < 0).any()  # no final ReLU


def test_panns_loads_reference_layout_and_uses_checkpoint_mel(fake_file):
    state = random_state(cnn14_layout())
    fake_file(state)
    emb = get_embedder("panns", weights="Cnn14_mAP=0.431.pth")
    torch.testing.assert_close(emb.net.melW, state["logmel_extractor.melW"])
    out = emb.features(torch.randn(2, 1, 32000, generator=torch.Generator().manual_seed(1)) * 0.1, 32000)
    assert out.frames.shape == (2, 2048) and out.posteriors.shape == (2, 527)


def test_clap_loads_msclap_layout(fake_file):
    state = random_state(cnn14_layout("audio_encoder.base."))
    state.update(
        random_state(
            {
                "audio_encoder.projection.linear1.weight": (1024, 2048),
                "audio_encoder.projection.linear2.weight": (1024, 1024),
                "audio_encoder.projection.layer_norm.weight": (1024,),
                "audio_encoder.projection.layer_norm.bias": (1024,),
                "caption_encoder.base.embeddings.word_embeddings.weight": (10, 4),
                "logit_scale": (),
            }
        )
    )
    fake_file(state)
    emb = get_embedder("clap", weights="CLAP_weights_2022.pth")
    out = emb.features(torch.randn(1, 2, 44100, generator=torch.Generator().manual_seed(2)) * 0.1, 44100)
    assert out.frames.shape == (1, 1024)  # 1 s repeated up to one 5 s block
    fake_file({"fc1.weight": torch.zeros(2, 2)})
    with pytest.raises(EmbedderError, match="not a Microsoft CLAP 2022"):
        get_embedder("clap", weights="other.pth")


def test_mismatched_weights_are_reported(fake_file):
    state = random_state(torchvggish_layout())
    del state["embeddings.4.weight"]
    fake_file(state)
    with pytest.raises(EmbedderError, match="do not match"):
        get_embedder("vggish", weights="broken.pth")
