"""Backbone adaptation by config: train_blocks, freeze, LoRA adapters and gradient checkpointing; LoRA runs
reload exactly, export their adapter for peft, and start other runs with the adapters merged."""

from __future__ import annotations

import copy

import pytest
import torch
from safetensors.torch import load_file

import crossfuse
from crossfuse.api import demo_paths, task_class, typed_config
from crossfuse.backbones import build_backbone
from crossfuse.backbones.adapt import adapt_backbone, enable_gradient_checkpointing, find_blocks, merge_lora
from crossfuse.config import BackboneConfig, LoraConfig
from crossfuse.errors import ConfigError
from crossfuse.testing import write_tiny_audio_backbone, write_tiny_image_backbone


def trainable(backbone):
    return [name for name, parameter in backbone.named_parameters() if parameter.requires_grad]


# -- train_blocks and freeze -------------------------------------------------------------------


def test_train_blocks_1_trains_the_top_encoder_layer_and_nothing_below(capsys):
    backbone = build_backbone({"name": "tiny-bert", "train_blocks": 1})
    names = trainable(backbone)
    assert names and all(name.startswith("model.encoder.layer.1.") for name in names)
    assert len(names) == len(list(backbone.model.encoder.layer[1].parameters()))
    assert "backbone: training the top 1 of 2 blocks (" in capsys.readouterr().err


def test_train_blocks_keeps_the_final_norm_and_pooler_trainable_with_the_top_blocks(tmp_path):
    backbone = build_backbone({"name": str(write_tiny_image_backbone(tmp_path / "vit")), "train_blocks": 1})
    vit, (lower, top) = backbone.model, find_blocks(backbone)
    expected = [*top.parameters(), *vit.layernorm.parameters(), *vit.pooler.parameters()]
    assert {id(p) for p in backbone.parameters() if p.requires_grad} == {id(p) for p in expected}
    assert not any(p.requires_grad for p in [*vit.embeddings.parameters(), *lower.parameters()])


def test_a_final_norm_registered_before_the_layers_still_trains_with_them(tmp_path):
    # Pre-norm wav2vec2 (do_stable_layer_norm) applies encoder.layer_norm after its layers.
    backbone = build_backbone({"name": str(write_tiny_audio_backbone(tmp_path / "w2v")), "train_blocks": 1})
    names = set(trainable(backbone))
    assert "model.encoder.layer_norm.weight" in names
    assert not any(n.startswith(("model.feature_extractor.", "model.encoder.layers.0.")) for n in names)


def test_resnet_blocks_are_its_four_layers_and_the_stem_stays_frozen():
    backbone = build_backbone({"name": "resnet18", "pretrained": False, "train_blocks": 2})
    assert find_blocks(backbone) == [backbone.body.layer1, backbone.body.layer2, backbone.body.layer3,
                                     backbone.body.layer4]
    assert {name.split(".")[1] for name in trainable(backbone)} == {"layer3", "layer4"}


def test_train_blocks_0_and_freeze_train_nothing_of_the_backbone():
    assert trainable(build_backbone({"name": "tiny-bert", "train_blocks": 0})) == []
    assert trainable(build_backbone({"name": "tiny-bert", "freeze": True})) == []


def test_more_blocks_than_the_backbone_has_is_refused_with_the_count():
    with pytest.raises(ConfigError, match=r"backbone.train_blocks=3: tiny-bert has 2 blocks; choose 0 to 2"):
        build_backbone({"name": "tiny-bert", "train_blocks": 3})


def test_a_backbone_without_blocks_is_told_to_use_freeze_instead():
    with pytest.raises(ConfigError, match=r"backbone.train_blocks=1: found no repeated blocks in tiny-cnn .*"
                                          r"backbone.freeze=true"):
        build_backbone({"name": "tiny-cnn", "train_blocks": 1})


@pytest.mark.parametrize("options", [{"freeze": True, "lora": {"r": 4}}, {"train_blocks": 1, "lora": {"r": 4}},
                                     {"freeze": True, "train_blocks": 1}])
def test_two_ways_of_choosing_what_trains_are_refused(options):
    with pytest.raises(ConfigError, match="each choose what of the backbone trains: set only one"):
        build_backbone({"name": "tiny-bert", **options})


# -- LoRA --------------------------------------------------------------------------------------


def test_lora_adds_adapters_on_query_and_value_and_only_they_train(capsys):
    plain = build_backbone("tiny-bert", adapt=False).eval()
    adapted = copy.deepcopy(plain)
    adapt_backbone(adapted, BackboneConfig(name="tiny-bert", lora=LoraConfig(r=4)))
    names = trainable(adapted)
    assert len(names) == 2 * 2 * 2  # 2 layers x (query, value) x (A, B)
    assert all(".lora_A.default." in n or ".lora_B.default." in n for n in names)
    assert {n.split(".")[-4] for n in names} == {"query", "value"}
    assert "backbone: LoRA r=4 on query, value: " in capsys.readouterr().err
    batch = plain.tokenize(["Profit rose", "Shares fell"])
    with torch.no_grad():  # lora_B starts at zero: the adapted model starts as the plain one
        assert torch.allclose(plain(**batch), adapted.eval()(**batch), atol=1e-6)


def test_lora_on_a_cnn_without_target_modules_names_candidates():
    with pytest.raises(ConfigError, match=r"backbone.lora: tiny-cnn is not a transformers model.*"
                                          r"backbone.lora.target_modules \(.*body.0, body.3"):
        build_backbone({"name": "tiny-cnn", "lora": {"r": 4}})


def test_lora_on_named_cnn_layers_works_through_peft():
    backbone = build_backbone({"name": "tiny-cnn", "lora": {"r": 2, "target_modules": ["body.0"]}})
    assert sorted(trainable(backbone)) == ["body.0.lora_A.default.weight", "body.0.lora_B.default.weight"]


def test_unknown_lora_target_modules_name_what_the_backbone_has():
    with pytest.raises(ConfigError, match=r"backbone.lora.target_modules=\['qkv'\]: .*not found.* "
                                          r"take adapters: query, key, value, dense"):
        build_backbone({"name": "tiny-bert", "lora": {"r": 4, "target_modules": ["qkv"]}})


def test_merge_lora_folds_the_adapter_into_the_base_weight():
    base, a, b = torch.randn(6, 5), torch.randn(2, 5), torch.randn(6, 2)
    state = {"q.base_layer.weight": base, "q.base_layer.bias": torch.ones(6), "q.lora_A.default.weight": a,
             "q.lora_B.default.weight": b, "k.weight": torch.zeros(3)}
    merged, modules = merge_lora(state, alpha=8)
    assert modules == ["q"] and set(merged) == {"q.weight", "q.bias", "k.weight"}
    assert torch.allclose(merged["q.weight"], base + 4 * b @ a)


# -- gradient checkpointing --------------------------------------------------------------------


def calls_of(module):
    calls = []
    module.register_forward_hook(lambda *_: calls.append(1))
    return calls


def loss_and_grads(backbone, inputs):
    backbone.train().zero_grad()
    torch.manual_seed(0)  # the same dropout masks for both
    loss = backbone(**inputs).pow(2).mean()
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in backbone.named_parameters() if p.grad is not None}


def assert_same(reference, checkpointed):
    assert torch.allclose(reference[0], checkpointed[0], atol=1e-6)
    assert reference[1].keys() == checkpointed[1].keys() and reference[1]
    for name, grad in reference[1].items():
        assert torch.allclose(grad, checkpointed[1][name], atol=1e-5, rtol=1e-4), name


def test_gradient_checkpointing_on_a_transformers_backbone_recomputes_and_gives_the_same_gradients():
    plain = build_backbone("tiny-bert")
    checkpointed = copy.deepcopy(plain)
    enable_gradient_checkpointing(checkpointed, "tiny-bert")
    inputs = plain.tokenize(["Profit rose 9%", "The lender cut 300 jobs"])
    calls = calls_of(checkpointed.model.encoder.layer[0].attention)
    assert_same(loss_and_grads(plain, inputs), loss_and_grads(checkpointed, inputs))
    assert len(calls) == 2  # once forward, once recomputed in backward


def test_gradient_checkpointing_on_a_torchvision_resnet_gives_the_same_gradients_and_statistics():
    plain = build_backbone({"name": "resnet18", "pretrained": False})
    checkpointed = build_backbone({"name": "resnet18", "pretrained": False, "gradient_checkpointing": True})
    checkpointed.load_state_dict(plain.state_dict())
    assert checkpointed.state_dict().keys() == plain.state_dict().keys()
    images = {"images": torch.randn(2, 3, 32, 32)}
    calls = calls_of(checkpointed.body.layer2[0].conv1)
    assert_same(loss_and_grads(plain, images), loss_and_grads(checkpointed, images))
    assert len(calls) == 2
    # Recomputing must not count the batch twice in batch-norm running statistics.
    for (name, mine), theirs in zip(checkpointed.named_buffers(), plain.buffers()):
        assert torch.equal(mine, theirs), name
    with torch.no_grad():  # eval mode runs plainly
        assert torch.allclose(checkpointed.eval()(images["images"]), plain.eval()(images["images"]), atol=1e-5)


def test_gradient_checkpointing_on_a_backbone_without_blocks_is_refused():
    with pytest.raises(ConfigError, match=r"backbone.gradient_checkpointing: tiny-cnn .* does not support it"):
        build_backbone({"name": "tiny-cnn", "gradient_checkpointing": True})


# -- a LoRA run end to end ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory):
    from crossfuse.testing import smoke_fit

    return smoke_fit("finance-sentiment", tmp_path_factory.mktemp("lora") / "run", backbone="tiny-bert",
                     overrides=["backbone.lora.r=4", "train.max_steps=3", "train.lr=1e-2", "train.batch_size=32"])


def saved(run_dir):
    """The run, its task class and its typed config, as crossfuse.load reads them."""
    from crossfuse.runs import RunDir

    run = RunDir.open(run_dir)
    cls = task_class(run.read_config()["task"])
    return run, cls, typed_config(run.read_config(), cls)


def rebuilt_model(run_dir):
    from crossfuse.run_backbones import SINGLE, rebuild_backbones

    run, cls, config = saved(run_dir)
    task = cls(config)
    task.load_state_dict(run.read_task_state())
    return task.build_model(rebuild_backbones(run, cls, config)[SINGLE])


@pytest.mark.slow
def test_a_lora_run_trains_its_adapters_and_reloads_exactly(lora_run):
    checkpoint = load_file(str(lora_run.run_dir / "checkpoints" / "best.safetensors"))
    lora_b = [key for key in checkpoint if ".lora_B.default." in key]
    assert len(lora_b) == 4 and all(checkpoint[key].abs().sum() > 0 for key in lora_b)  # zero at the start
    missing, unexpected = rebuilt_model(lora_run.run_dir).load_state_dict(checkpoint, strict=False)
    assert missing == [] and unexpected == []
    first = crossfuse.load(lora_run.run_dir).predict(["Profit rose", "Net loss widened"])
    assert crossfuse.load(lora_run.run_dir).predict(["Profit rose", "Net loss widened"]) == first
    metrics = crossfuse.evaluate(lora_run.run_dir, data=demo_paths("finance-sentiment")["test"])
    assert metrics["confusion_matrix"] == lora_run.report["splits"]["test"]["confusion_matrix"]


@pytest.mark.slow
def test_a_lora_run_exports_its_adapter_in_peft_format(lora_run):
    import peft
    from transformers import BertConfig, BertModel

    run, _, _ = saved(lora_run.run_dir)
    folder = lora_run.run_dir / "backbone" / "lora"  # written by the run itself, from its best checkpoint
    assert (folder / "adapter_config.json").is_file()
    base = BertModel(BertConfig.from_pretrained(str(lora_run.run_dir / "backbone")))
    loaded = peft.PeftModel.from_pretrained(base, str(folder))
    checkpoint = load_file(str(run.best_weights()))
    key = "backbone.model.encoder.layer.1.attention.self.value.lora_B.default.weight"
    assert torch.equal(loaded.base_model.model.encoder.layer[1].attention.self.value.lora_B["default"].weight,
                       checkpoint[key])


@pytest.mark.slow
def test_init_from_a_lora_run_merges_its_adapters_into_a_plain_backbone(lora_run, capsys):
    from crossfuse.run_backbones import SINGLE, build_backbones

    config = crossfuse.resolve_config("finance-sentiment", backbone="tiny-bert",
                                      overrides=[f"backbone.init_from={lora_run.run_dir}"])
    backbones, origins = build_backbones(task_class("finance-sentiment"), config)
    assert origins[SINGLE]["lora_merged"] == 4 and "LoRA adapters merged into 4 weights" in capsys.readouterr().err
    plain = backbones[SINGLE].eval()
    assert not any("lora_" in key for key in plain.state_dict())
    adapted = rebuilt_model(lora_run.run_dir)
    adapted.load_state_dict(load_file(str(lora_run.run_dir / "checkpoints" / "best.safetensors")))
    batch = plain.tokenize(["Profit rose", "Shares fell sharply"])
    with torch.no_grad():  # the merged weights compute what base + adapters computed
        assert torch.allclose(plain(**batch), adapted.backbone.eval()(**batch), atol=1e-5)
