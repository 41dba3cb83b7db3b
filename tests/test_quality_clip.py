"""CLIP frame consistency and text alignment with a tiny random CLIP model built in code and loaded the way a
user's is (a folder, or a hub id found in the local Hugging Face cache); offline without a model: "not computed",
and nothing is downloaded."""

from __future__ import annotations

import json
import os
import socket

import pytest
from synthetic_clips import moving_clip, save_clip, texture

from t2vz_backend.cli import main
from t2vz_backend.quality.consistency import REPORT_JSON, ReportSpec, make_report
from t2vz_backend.quality.measure import ClipSettings

REPO = "t2vz-tests/tiny-clip"
REVISION = "0123456789abcdef0123456789abcdef01234567"


def build_tiny_clip(folder) -> str:
    """A random-weight CLIPModel (32 px images, 2 layers of width 32) with a tokenizer and image processor."""
    import torch
    import transformers
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

    from t2vz_backend.models.tiny_vocab import MERGES, vocabulary

    tokenizer = CLIPTokenizer(vocab=vocabulary(), merges=[tuple(m.split(" ")) for m in MERGES], model_max_length=77)
    text = {"vocab_size": len(tokenizer), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 2, "max_position_embeddings": 77, "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id}
    vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
              "image_size": 32, "patch_size": 8}
    torch.manual_seed(0)
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    processor = getattr(transformers, "CLIPImageProcessorPil", None) or transformers.CLIPImageProcessor
    processor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> str:
    return build_tiny_clip(tmp_path_factory.mktemp("clip"))


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the report tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_clip_metrics_from_a_model_folder(tmp_path, tiny_clip, no_network):
    static = save_clip(tmp_path / "static", [texture(40, 56)] * 3)
    clip = ClipSettings(model=tiny_clip, prompts=("a fox",), offline=True)
    document = make_report(ReportSpec(folder=static, clip=clip)).document
    assert document["clip"]["computed"] and document["clip"]["model"] == tiny_clip
    summary = document["summary"]
    assert summary["clip_consistency"] == pytest.approx(1.0, abs=1e-4)  # the same picture three times
    assert -100 <= summary["clip_text"] <= 100 and len(document["clip"]["text_per_frame"]) == 3
    moving = save_clip(tmp_path / "moving", moving_clip(3, (6.0, 3.0), size=(56, 40)) + [texture(40, 56, 0, 20)])
    pairs = make_report(ReportSpec(folder=moving, clip=clip)).document["pairs"]
    assert all(-1.0 <= p["clip_consistency"] <= 1.0 for p in pairs) and pairs[0]["clip_consistency"] < 1.0


def test_per_frame_prompts_are_scored_frame_by_frame(tmp_path, tiny_clip):
    folder = save_clip(tmp_path / "c", [texture(32, 32)] * 2)
    same = ClipSettings(model=tiny_clip, prompts=("a fox", "a fox"))
    apart = ClipSettings(model=tiny_clip, prompts=("a fox", "zebra stripes at night"))
    first = make_report(ReportSpec(folder=folder, clip=same)).document["clip"]["text_per_frame"]
    second = make_report(ReportSpec(folder=folder, clip=apart)).document["clip"]["text_per_frame"]
    assert first[0] == second[0] and first[1] == first[0] and second[1] != first[1]


def test_a_hub_id_is_read_from_the_local_cache_offline(tmp_path, tiny_clip, monkeypatch, no_network):
    import huggingface_hub.constants

    cache = tmp_path / "hub"
    snapshot = cache / f"models--{REPO.replace('/', '--')}" / "snapshots" / REVISION
    snapshot.mkdir(parents=True)
    for name in os.listdir(tiny_clip):
        os.symlink(os.path.join(tiny_clip, name), snapshot / name)
    (cache / f"models--{REPO.replace('/', '--')}" / "refs").mkdir()
    (cache / f"models--{REPO.replace('/', '--')}" / "refs" / "main").write_text(REVISION)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    folder = save_clip(tmp_path / "c", moving_clip(2, (1.0, 0.0), size=(32, 32)))
    assert main(["report", folder, "--clip-model", REPO, "--prompt", "a fox", "--offline"]) == 0
    document = json.loads((tmp_path / "c" / REPORT_JSON).read_text())
    assert document["clip"]["computed"] and document["summary"]["clip_text"] is not None


def test_offline_without_the_model_is_not_computed_and_nothing_is_downloaded(tmp_path, monkeypatch, no_network,
                                                                            capsys):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    folder = save_clip(tmp_path / "c", moving_clip(2, (1.0, 0.0), size=(32, 32)))
    assert main(["report", folder, "--clip-model", "openai/clip-vit-base-patch32", "--offline"]) == 0
    document = json.loads((tmp_path / "c" / REPORT_JSON).read_text())
    assert document["clip"]["computed"] is False and document["summary"]["clip_consistency"] is None
    assert "not in the local Hugging Face cache" in document["clip"]["reason"]
    assert "CLIP metrics not computed" in capsys.readouterr().out
    assert not os.path.exists(tmp_path / "empty-cache" / "models--openai--clip-vit-base-patch32" / "blobs")
