"""MobileVLAModel: RoboVLMs parameter names, LoRA placement, shapes, loss, cached inference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mvla_sim.facts import INSTRUCTIONS
from policies.processors import PreprocessSettings, preprocess_frame
from policies.vla_config import VLAConfig
from policies.vla_model import (
    BackboneNotFoundError,
    FrameFeatureCache,
    MobileVLAModel,
    build_backbone,
    lora_target_modules,
)

LAYER_PATH = "text_model.model.layers.0.self_attn.k_proj"


@pytest.fixture(scope="module")
def model(perturbed_model) -> MobileVLAModel:
    return perturbed_model


@pytest.fixture(scope="module")
def velocities_model() -> MobileVLAModel:
    return MobileVLAModel.build(VLAConfig(head_type="MobileVLALSTMDecoder", fwd_pred_next_n=5), seed=0).eval()


def frames(n: int, seed: int = 0, size: int = 224) -> list[torch.Tensor]:
    rng = np.random.default_rng(seed)
    settings = PreprocessSettings(image_size=size)
    return [preprocess_frame(rng.integers(0, 256, (36, 64, 3), dtype=np.uint8), settings) for _ in range(n)]


# ------------------------------------------------------------------------------ layout
def test_state_dict_has_both_backbone_aliases_with_lora_names(model):
    keys = set(model.state_dict())
    for suffix in ("base_layer.weight", "base_layer.bias", "lora_A.default.weight", "lora_B.default.weight"):
        assert f"backbone.{LAYER_PATH}.{suffix}" in keys
        assert f"model.base_model.model.{LAYER_PATH}.{suffix}" in keys
    backbone = {k[len("backbone.") :] for k in keys if k.startswith("backbone.")}
    peft = {k[len("model.base_model.model.") :] for k in keys if k.startswith("model.base_model.model.")}
    assert backbone == peft
    sd = model.state_dict()
    assert (
        sd[f"backbone.{LAYER_PATH}.base_layer.weight"].data_ptr()
        == sd[f"model.base_model.model.{LAYER_PATH}.base_layer.weight"].data_ptr()
    )


def test_lora_targets_every_linear_but_lm_head(model):
    keys = set(model.state_dict())
    assert "backbone.vision_model.model.encoder.layers.0.self_attn.q_proj.lora_A.default.weight" in keys
    assert "backbone.vision_model.model.encoder.layers.1.mlp.fc2.lora_B.default.weight" in keys
    assert "backbone.image_to_text_projection.dense.lora_A.default.weight" in keys
    assert "backbone.image_to_text_projection.x_attn.out_proj.lora_A.default.weight" in keys
    assert "backbone.text_model.model.layers.1.ffn.fc1.lora_A.default.weight" in keys
    assert not any("lm_head" in k and "lora" in k for k in keys)
    targets = lora_target_modules(build_backbone(VLAConfig())[0])
    assert set(targets) == {"q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2", "dense"}


def test_head_parameter_names_lstm_decoder(model):
    keys = set(model.state_dict())
    for layer in range(4):
        for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            assert f"act_head.rnn.{kind}_l{layer}" in keys
    assert "act_head.rnn.weight_ih_l4" not in keys
    widths = {0: (1024, 512), 2: (512, 1024), 4: (256, 512), 6: (10, 256)}
    for head in ("actions", "gripper"):
        for idx, shape in widths.items():
            assert tuple(model.state_dict()[f"act_head.{head}.mlp.{idx}.weight"].shape) == shape
    assert model.state_dict()["act_head.rnn.weight_hh_l0"].shape == (4 * 512, 512)
    assert model.action_token.shape == (model.text_hidden_size,)


def test_head_parameter_names_velocities(velocities_model):
    keys = set(velocities_model.state_dict())
    assert {f"act_head.velocities.mlp.{i}.weight" for i in (0, 2, 4, 6)} <= keys
    assert not any(k.startswith(("act_head.actions.", "act_head.gripper.")) for k in keys)
    assert velocities_model.state_dict()["act_head.velocities.mlp.6.weight"].shape == (5 * 2, 256)


def test_only_lora_head_and_action_token_train(model):
    names = [n for n, _ in model.named_trainable_parameters()]
    assert names and all("lora_" in n or n.startswith("act_head.") or n == "action_token" for n in names)
    assert "action_token" in names
    counts = model.parameter_counts()
    assert counts["trainable"] == counts["lora"] + counts["head"] + counts["action_token"]
    assert sum(p.numel() for p in model.trainable_parameters()) == counts["trainable"]


def test_meta_build_matches_real_structure(model):
    meta = MobileVLAModel.build_meta(VLAConfig())
    real = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in meta.state_dict().items()} == real


def test_missing_backbone_folder_names_folder_and_fix(tmp_path):
    folder = tmp_path / "kosmos-2-patch14-224"
    with pytest.raises(BackboneNotFoundError) as info:
        MobileVLAModel.build(VLAConfig(backbone=str(folder)))
    assert str(folder) in str(info.value) and "backbone_dir" in str(info.value)


# ------------------------------------------------------------------------------ forward
def test_forward_shapes_and_ranges(model, velocities_model):
    text = model.text_inputs(INSTRUCTIONS["left"])
    x = torch.stack(frames(3)).unsqueeze(0).repeat(2, 1, 1, 1, 1)
    with torch.no_grad():
        pred = model(
            x, text.input_ids.unsqueeze(0).repeat(2, 1), text.attention_mask.unsqueeze(0).repeat(2, 1)
        )
        vel = velocities_model(x, text.input_ids, text.attention_mask)
    assert pred.shape == (2, 3, 10, 2)
    assert pred[..., 0].abs().max() <= 1.0  # actions: tanh; gripper column is unbounded
    assert vel.shape == (2, 3, 5, 2) and vel.abs().max() <= 1.0
    assert torch.allclose(pred[0], pred[1], atol=1e-5)


def test_features_depend_on_image_and_instruction(model):
    f = torch.stack(frames(2))
    left, right = model.text_inputs(INSTRUCTIONS["left"]), model.text_inputs(INSTRUCTIONS["right"])
    with torch.no_grad():
        a = model.encode_frames(f, left.input_ids, left.attention_mask)
        b = model.encode_frames(f[:1], right.input_ids, right.attention_mask)
    assert a.shape == (2, model.text_hidden_size)
    assert not torch.allclose(a[0], a[1])
    assert not torch.allclose(a[0], b[0])


def test_cached_inference_equals_full_recompute(model):
    text = model.text_inputs(INSTRUCTIONS["right"])
    seq = frames(10, seed=3)
    cache = FrameFeatureCache(model.config.window_size)
    for step, frame in enumerate(seq):
        cache.append(frame)
        cached = model.predict_cached(cache, text)
        full = model.predict_window(seq[: step + 1], text)
        assert cached.shape == (10, 2)
        torch.testing.assert_close(cached, full, atol=1e-5, rtol=1e-4)
    assert cache.frames_encoded == len(seq)  # each frame went through the backbone once


# ------------------------------------------------------------------------------ training
def test_compute_loss_masked_huber_and_names():
    pred = torch.zeros(1, 2, 3, 2, requires_grad=True)
    target = torch.zeros(1, 2, 3, 2)
    target[0, 1] = 3.0  # huber(3) = 2.5 for delta 1
    mask = torch.ones(1, 2, 3)
    out = MobileVLAModel.compute_loss(pred, target, mask)
    assert set(out) == {"loss", "loss_velocity_act", "rmse_velocity_act"}
    assert out["loss"].item() == pytest.approx(1.25)
    assert out["rmse_velocity_act"].item() == pytest.approx(1.25**0.5)
    mask[0, 1] = 0
    assert MobileVLAModel.compute_loss(pred, target, mask)["loss"].item() == pytest.approx(0.0)
    empty = MobileVLAModel.compute_loss(pred, target, torch.zeros(1, 2, 3))["loss"]
    empty.backward()
    assert empty.item() == 0.0 and pred.grad is not None
    with pytest.raises(ValueError, match="mask"):
        MobileVLAModel.compute_loss(pred, target, torch.ones(1, 2))


def test_backward_reaches_lora_head_and_action_token(model):
    model.train()
    try:
        text = model.text_inputs(INSTRUCTIONS["left"])
        pred = model(torch.stack(frames(2)).unsqueeze(0), text.input_ids, text.attention_mask)
        model.compute_loss(pred, torch.full_like(pred, 0.5))["loss"].backward()
        grads = {n: p.grad for n, p in model.named_parameters()}
        assert grads["action_token"] is not None and grads["action_token"].abs().sum() > 0
        assert grads[f"backbone.{LAYER_PATH}.lora_A.default.weight"].abs().sum() > 0
        assert grads["act_head.rnn.weight_ih_l0"].abs().sum() > 0
        assert grads[f"backbone.{LAYER_PATH}.base_layer.weight"] is None
    finally:
        model.zero_grad(set_to_none=True)
        model.eval()
