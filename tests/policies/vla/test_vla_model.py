"""MobileVLAModel: the fork's parameter names, LoRA placement, the three heads, causal head,
backbone passes, losses, LoRA merging."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mvla_sim.facts import INSTRUCTIONS
from policies.vla.config import DEFAULT_PROMPT_TEMPLATE, VLAConfig
from policies.vla.model import BackboneNotFoundError, MobileVLAModel, build_backbone, lora_target_modules
from policies.vla.processors import (
    collate_layouts,
    layout_tokens,
    prompt_text,
    resize_frame,
    to_pixels,
    tokenize_prompt,
)

LAYER_PATH = "text_model.model.layers.0.self_attn.k_proj"
CLASS_WEIGHTS = (0.5, 1.0, 2.0, 1.5, 1.5, 1.2, 1.2, 2.0, 2.0)


@pytest.fixture(scope="module")
def model(perturbed_model) -> MobileVLAModel:
    return perturbed_model


@pytest.fixture(scope="module")
def velocities_model(tiny_config, perturb) -> MobileVLAModel:
    return perturb(
        MobileVLAModel.build(tiny_config(head_type="MobileVLALSTMDecoder"), seed=1), head_gain=5.0
    ).eval()


@pytest.fixture(scope="module")
def classifier(tiny_config, perturb) -> MobileVLAModel:
    config = tiny_config(
        head_type="MobileVLAClassificationDecoder", num_classes=9, class_weights=CLASS_WEIGHTS
    )
    return perturb(MobileVLAModel.build(config, seed=2)).eval()


def text(model: MobileVLAModel, instruction: str = INSTRUCTIONS["left"], layout: str = "fork") -> dict:
    ids, mask = tokenize_prompt(model.tokenizer, prompt_text(instruction, DEFAULT_PROMPT_TEMPLATE))
    return collate_layouts([layout_tokens(ids, mask, layout=layout, num_image_tokens=model.num_image_tokens)])


def pixels(frames: list[np.ndarray]) -> torch.Tensor:
    return torch.stack([to_pixels(resize_frame(f, 224), "clip") for f in frames])


# ------------------------------------------------------------------------------ layout
def test_state_dict_has_both_backbone_aliases_with_lora_names(model):
    sd = model.state_dict()
    for suffix in ("base_layer.weight", "base_layer.bias", "lora_A.default.weight", "lora_B.default.weight"):
        assert f"backbone.{LAYER_PATH}.{suffix}" in sd
        assert f"model.base_model.model.{LAYER_PATH}.{suffix}" in sd
    backbone = {k[len("backbone.") :] for k in sd if k.startswith("backbone.")}
    peft = {k[len("model.base_model.model.") :] for k in sd if k.startswith("model.base_model.model.")}
    assert backbone == peft
    a, b = (
        sd[f"backbone.{LAYER_PATH}.lora_B.default.weight"],
        sd[f"model.base_model.model.{LAYER_PATH}.lora_B.default.weight"],
    )
    assert a.data_ptr() == b.data_ptr() and a.abs().sum() > 0  # one tensor, two names; perturbed


def test_lora_targets_every_linear_but_lm_head_by_default(model):
    keys = set(model.state_dict())
    for path in (
        "vision_model.model.encoder.layers.0.self_attn.q_proj",
        "vision_model.model.encoder.layers.1.mlp.fc2",
        "image_to_text_projection.dense",
        "image_to_text_projection.x_attn.out_proj",
        "text_model.model.layers.1.ffn.fc1",
    ):
        assert f"backbone.{path}.lora_A.default.weight" in keys, path
    assert not any("lm_head" in k and "lora" in k for k in keys)
    targets = lora_target_modules(build_backbone(VLAConfig())[0])
    assert set(targets) == {"q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2", "dense"}


def test_lora_exactly_on_the_listed_modules(tiny_config):
    m = MobileVLAModel.build(tiny_config(lora_target_modules=("q_proj", "v_proj")), seed=0)
    lora_modules = {
        k.split(".lora_")[0] for k in m.state_dict() if k.startswith("backbone.") and ".lora_" in k
    }
    assert lora_modules and {p.rsplit(".", 1)[-1] for p in lora_modules} == {"q_proj", "v_proj"}
    linears = {
        "backbone." + n
        for n, mod in m.backbone.named_modules()
        if n.rsplit(".", 1)[-1] in ("q_proj", "v_proj") and hasattr(mod, "base_layer")
    }
    assert lora_modules == linears and len(linears) > 4  # text, vision and the projection's attention
    assert f"backbone.{LAYER_PATH}.weight" in m.state_dict()  # k_proj stays a plain linear


def test_without_lora_there_is_no_adapter_and_no_alias(tiny_config):
    m = MobileVLAModel.build(tiny_config(lora_enable=False), seed=0)
    keys = list(m.state_dict())
    assert not any("lora_" in k or k.startswith("model.") for k in keys)
    assert {n for n, _ in m.named_trainable_parameters()} == {
        n for n, _ in m.named_parameters() if n.startswith("act_head.") or n == "action_token"
    }
    m.set_lora_merged(True)  # a no-op without LoRA
    assert not m.lora_merged()


def test_lstm_decoder_parameter_names_and_shapes(model):
    sd = model.state_dict()
    for layer in range(2):
        for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            assert f"act_head.rnn.{kind}_l{layer}" in sd
    assert "act_head.rnn.weight_ih_l2" not in sd
    assert tuple(sd["act_head.rnn.weight_ih_l0"].shape) == (4 * 32, model.text_hidden_size)
    widths = {0: (1024, 32), 2: (512, 1024), 4: (256, 512), 6: (3, 256)}
    for head in ("actions", "gripper"):
        for idx, shape in widths.items():
            assert tuple(sd[f"act_head.{head}.mlp.{idx}.weight"].shape) == shape
    assert model.action_token.shape == (model.text_hidden_size,)


def test_velocities_head_names(velocities_model):
    sd = velocities_model.state_dict()
    assert {f"act_head.velocities.mlp.{i}.weight" for i in (0, 2, 4, 6)} <= set(sd)
    assert not any(k.startswith(("act_head.actions.", "act_head.gripper.")) for k in sd)
    assert tuple(sd["act_head.velocities.mlp.6.weight"].shape) == (3 * 2, 256)


def test_classification_head_logits_and_class_weights_buffer(classifier, tiny_config):
    sd = classifier.state_dict()
    assert tuple(sd["act_head.logits.weight"].shape) == (3 * 9, 32)
    assert sd["act_head.class_weights_tensor"].tolist() == pytest.approx(list(CLASS_WEIGHTS))
    assert "act_head.class_weights_tensor" not in dict(classifier.named_parameters())
    plain = MobileVLAModel.build(tiny_config(head_type="MobileVLAClassificationDecoder"), seed=0)
    assert "act_head.class_weights_tensor" not in plain.state_dict()
    assert tuple(plain.state_dict()["act_head.logits.weight"].shape) == (3 * 6, 32)


def test_only_lora_head_and_action_token_train(model):
    names = [n for n, _ in model.named_trainable_parameters()]
    assert names and all("lora_" in n or n.startswith("act_head.") or n == "action_token" for n in names)
    assert "action_token" in names and any("lora_B" in n for n in names)
    counts = model.parameter_counts()
    assert counts["trainable"] == counts["lora"] + counts["head"] + counts["action_token"]
    assert sum(p.numel() for p in model.trainable_parameters()) == counts["trainable"]
    assert counts["action_token"] == model.text_hidden_size and counts["backbone_base"] > 0


def test_seeded_build_is_reproducible(tiny_config):
    a = MobileVLAModel.build(tiny_config(), seed=3).state_dict()
    b = MobileVLAModel.build(tiny_config(), seed=3).state_dict()
    c = MobileVLAModel.build(tiny_config(), seed=4).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["act_head.rnn.weight_ih_l0"], c["act_head.rnn.weight_ih_l0"])


def test_meta_build_matches_the_real_structure(model, tiny_config):
    meta = MobileVLAModel.build_meta(tiny_config())
    assert {k: tuple(v.shape) for k, v in meta.state_dict().items()} == {
        k: tuple(v.shape) for k, v in model.state_dict().items()
    }
    assert all(p.is_meta for p in meta.parameters()) and meta.tokenizer is None


def test_meta_build_of_a_missing_folder_assumes_the_real_sizes(tmp_path, caplog):
    meta = MobileVLAModel.build_meta(VLAConfig(backbone=str(tmp_path / "absent"), lora_enable=True))
    assert meta.text_hidden_size == 2048 and meta.num_image_tokens == 64
    assert "assuming the real Kosmos-2 sizes" in caplog.text


def test_missing_backbone_folder_names_folder_and_fix(tmp_path):
    folder = tmp_path / "kosmos-2-patch14-224"
    with pytest.raises(BackboneNotFoundError) as info:
        MobileVLAModel.build(VLAConfig(backbone=str(folder)))
    assert str(folder) in str(info.value) and "backbone-dir" in str(info.value)
    assert "MVLA_KOSMOS2_DIR" in str(info.value)


# ------------------------------------------------------------------------------ backbone passes
def test_features_depend_on_the_frame_the_action_token_and_lora(model, random_frames):
    x, t = pixels(random_frames(2)), text(model)
    with torch.no_grad():
        base = model.encode_frames(x, t)
        assert base.shape == (2, model.text_hidden_size)
        assert (base[0] - base[1]).abs().max() > 1e-3
        token = model.action_token.detach().clone()
        model.action_token.add_(torch.randn(token.shape, generator=torch.Generator().manual_seed(0)) * 0.5)
        moved = model.encode_frames(x, t)
        model.action_token.copy_(token)
        lora_b = [p for n, p in model.named_parameters() if "lora_B" in n]
        saved = [p.detach().clone() for p in lora_b]
        for p in lora_b:
            p.zero_()
        no_lora = model.encode_frames(x, t)
        for p, s in zip(lora_b, saved, strict=True):
            p.copy_(s)
        again = model.encode_frames(x, t)
    assert (moved - base).abs().max() > 1e-2
    assert (no_lora - base).abs().max() > 1e-3
    torch.testing.assert_close(again, base)


def test_the_instruction_reaches_the_model_only_in_the_upstream_layout(model, random_frames):
    """The fork writes the image features over the first latent_query_num positions: a prompt
    shorter than that is hidden, only its length matters (as the fork's own code does)."""
    x = pixels(random_frames(1))
    with torch.no_grad():
        fork_left = model.encode_frames(x, text(model, "go left"))
        fork_right = model.encode_frames(x, text(model, "go right"))
        fork_longer = model.encode_frames(x, text(model, "go to the right"))
        up_left = model.encode_frames(x, text(model, "go left", "upstream"))
        up_right = model.encode_frames(x, text(model, "go right", "upstream"))
    torch.testing.assert_close(fork_left, fork_right)
    assert (fork_longer - fork_left).abs().max() > 1e-4
    assert (up_left - up_right).abs().max() > 1e-4


def test_per_frame_layouts_equal_one_shared_layout(model, random_frames):
    x, t = pixels(random_frames(3, seed=5)), text(model, layout="upstream")
    per_frame = {k: (v.repeat(3, 1) if v.ndim == 2 else v.repeat(3)) for k, v in t.items()}
    with torch.no_grad():
        torch.testing.assert_close(model.encode_frames(x, per_frame), model.encode_frames(x, t))


def test_frames_are_encoded_on_their_own(model, random_frames):
    x, t = pixels(random_frames(3, seed=6)), text(model)
    with torch.no_grad():
        together = model.encode_frames(x, t)
        alone = torch.cat([model.encode_frames(x[i : i + 1], t) for i in range(3)])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-4)


def test_encode_frames_checks_its_layout(model, random_frames):
    x, t = pixels(random_frames(2)), text(model)
    bad = dict(t, image_mask=t["image_mask"].clone())
    bad["image_mask"][0, 0] = False
    with pytest.raises(ValueError, match="image slots"):
        model.encode_frames(x, bad)
    three = {k: (v.repeat(3, 1) if v.ndim == 2 else v.repeat(3)) for k, v in t.items()}
    with pytest.raises(ValueError, match="rows"):
        model.encode_frames(x, three)


# ------------------------------------------------------------------------------ heads
def test_forward_is_the_head_over_per_frame_features(model, random_frames):
    x, t = pixels(random_frames(3, seed=1)), text(model)
    with torch.no_grad():
        pred = model(x[None].repeat(2, 1, 1, 1, 1), t)
        feats = model.encode_frames(x, t)
        by_hand = model.head(feats[None])
    assert pred.shape == (2, 3, 3, 2)
    torch.testing.assert_close(pred[0], by_hand[0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(pred[0], pred[1])
    with pytest.raises(ValueError, match="pixel_values"):
        model(x, t)
    with pytest.raises(ValueError, match="features"):
        model.head(feats)


def test_head_outputs_and_ranges(tiny_config):
    """LSTMDecoder: [tanh actions, unbounded gripper]; MobileVLALSTMDecoder: both tanh; the
    classifier: raw logits. Shifted output biases make the bounds visible."""
    heads = {
        name: MobileVLAModel.build(tiny_config(head_type=name, num_classes=9), seed=0).act_head.eval()
        for name in ("LSTMDecoder", "MobileVLALSTMDecoder", "MobileVLAClassificationDecoder")
    }
    with torch.no_grad():
        heads["LSTMDecoder"].actions.mlp[6].bias.fill_(5.0)
        heads["LSTMDecoder"].gripper.mlp[6].bias.fill_(5.0)
        heads["MobileVLALSTMDecoder"].velocities.mlp[6].bias.fill_(-5.0)
        heads["MobileVLAClassificationDecoder"].logits.bias.fill_(5.0)
        feats = torch.randn(2, 5, 64, generator=torch.Generator().manual_seed(0))
        lstm, vel, logits = (heads[name](feats) for name in heads)
    assert lstm.shape == vel.shape == (2, 5, 3, 2) and logits.shape == (2, 5, 3, 9)
    assert lstm[..., 0].max() <= 1.0 and lstm[..., 0].min() > 0.99  # tanh(5 + small)
    assert lstm[..., 1].min() > 4.0  # the gripper column is not squashed
    assert vel.min() >= -1.0 and vel.max() < -0.99
    assert logits.min() > 4.0


def test_the_head_is_causal(model, velocities_model, classifier):
    gen = torch.Generator().manual_seed(1)
    feats = torch.randn(1, 6, model.text_hidden_size, generator=gen)
    later = feats.clone()
    later[:, 4:] = torch.randn(1, 2, model.text_hidden_size, generator=gen)
    with torch.no_grad():
        for m in (model, velocities_model, classifier):
            full, changed = m.head(feats), m.head(later)
            torch.testing.assert_close(full[:, :4], changed[:, :4])
            torch.testing.assert_close(full[:, :4], m.head(feats[:, :4]))
            assert (full[:, 4:] - changed[:, 4:]).abs().max() > 1e-4


# ------------------------------------------------------------------------------ training
def test_regression_loss_is_masked_huber_with_the_forks_names(model):
    pred = torch.zeros(1, 2, 3, 2, requires_grad=True)
    target = torch.zeros(1, 2, 3, 2)
    target[0, 1] = 3.0  # huber(3) = 2.5 for delta 1
    mask = torch.ones(1, 2, 3)
    out = model.compute_loss(pred, target, mask)
    assert set(out) == {"loss", "loss_velocity_act", "rmse_velocity_act"}
    assert out["loss"].item() == pytest.approx(1.25) and out["rmse_velocity_act"].item() == pytest.approx(
        1.25**0.5
    )
    assert model.compute_loss(pred, target)["loss"].item() == pytest.approx(1.25)
    mask[0, 1] = 0
    assert model.compute_loss(pred, target, mask)["loss"].item() == pytest.approx(0.0)
    empty = model.compute_loss(pred, target, torch.zeros(1, 2, 3))["loss"]
    empty.backward()
    assert empty.item() == 0.0 and pred.grad is not None
    with pytest.raises(ValueError, match="mask"):
        model.compute_loss(pred, target, torch.ones(1, 2))
    with pytest.raises(ValueError, match="shape"):
        model.compute_loss(pred, target[..., :1])


def test_classification_loss_is_weighted_cross_entropy(classifier):
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 3, 9, generator=gen)
    labels = torch.randint(0, 9, (2, 4, 3), generator=gen)
    weights = torch.tensor(CLASS_WEIGHTS)
    out = classifier.compute_loss(logits, labels)
    expected = F.cross_entropy(logits.flatten(0, -2), labels.flatten(), weight=weights)
    assert out["loss"].item() == pytest.approx(expected.item(), rel=1e-6)
    assert out["loss"].item() != pytest.approx(
        F.cross_entropy(logits.flatten(0, -2), labels.flatten()).item()
    )
    mask = torch.zeros(2, 4, 3)
    mask[0] = 1
    masked = classifier.compute_loss(logits, labels, mask)["loss"]
    expected_masked = F.cross_entropy(logits[0].flatten(0, -2), labels[0].flatten(), weight=weights)
    assert masked.item() == pytest.approx(expected_masked.item(), rel=1e-6)
    assert classifier.compute_loss(logits, labels, torch.zeros(2, 4, 3))["loss"].item() == 0.0


def test_backward_reaches_lora_head_and_action_token(model, random_frames):
    model.train()
    try:
        pred = model(pixels(random_frames(2))[None], text(model))
        model.compute_loss(pred, torch.full_like(pred, 0.5))["loss"].backward()
        grads = {n: p.grad for n, p in model.named_parameters()}
        assert grads["action_token"] is not None and grads["action_token"].abs().sum() > 0
        assert grads[f"backbone.{LAYER_PATH}.lora_A.default.weight"].abs().sum() > 0
        assert grads["act_head.rnn.weight_ih_l0"].abs().sum() > 0
        assert grads[f"backbone.{LAYER_PATH}.base_layer.weight"] is None
    finally:
        model.zero_grad(set_to_none=True)
        model.eval()


# ------------------------------------------------------------------------------ merged LoRA
def test_merged_lora_gives_the_same_features_and_unmerges(model, random_frames):
    x, t = pixels(random_frames(2, seed=9)), text(model)
    base_weight = model.backbone.get_submodule(LAYER_PATH).base_layer.weight.detach().clone()
    with torch.no_grad():
        plain = model.encode_frames(x, t)
        model.set_lora_merged(True)
        try:
            assert model.lora_merged()
            assert not torch.equal(model.backbone.get_submodule(LAYER_PATH).base_layer.weight, base_weight)
            merged = model.encode_frames(x, t)
        finally:
            model.set_lora_merged(False)
    assert not model.lora_merged()
    torch.testing.assert_close(merged, plain, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(
        model.backbone.get_submodule(LAYER_PATH).base_layer.weight, base_weight, atol=1e-6, rtol=0
    )
