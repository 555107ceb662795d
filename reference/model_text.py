"""Fixtures for the text encoder, LoRA, safetensors and checkpoint tests (test/model/).

Builds tiny random BERT and RoBERTa models with transformers, wraps them in
peft LoRA adapters, runs them on padded batches and stores inputs, outputs and
gradients as safetensors under test/fixtures/model/text/. It also counts the
parameters of a randomly initialised roberta-base with the MoRE reference LoRA
settings (r=16, alpha=8, dropout=0.1, bias="all", peft's default targets) and
writes half-precision files for the safetensors reader, and a tiny model
with the reference MoRE module names for the checkpoint import.

Run: /work/main/.venv/bin/python reference/model_text.py
With --check-ts-file PATH it only loads a file written by the TypeScript
writer with the safetensors package and prints its tensors.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

# NOTE: the environment's torchvision wheel is a CUDA build whose compiled
# operators fail to register against the CPU torch, and transformers imports
# torchvision whenever it is installed. Hiding it from this process only is
# safe because nothing here touches images.
sys.modules["torchvision"] = None

import torch  # noqa: E402
from peft import LoraConfig, get_peft_model  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from torch import nn  # noqa: E402
from transformers import BertConfig, BertModel, RobertaConfig, RobertaModel  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "test", "fixtures", "model", "text")


def peft_name_to_ours(name: str) -> str:
    """Maps a peft parameter name to the unprefixed transformers name our encoder uses."""
    name = name.removeprefix("base_model.model.")
    name = name.replace(".base_layer.", ".").replace(".default.", ".")
    return name


def roberta_inputs(pad: int):
    # Three sequences of length 12: full, with 4 padding tokens, with 7 padding tokens.
    g = torch.Generator().manual_seed(11)
    ids = torch.randint(3, 100, (3, 12), generator=g)
    ids[:, 0] = 0
    lengths = [12, 8, 5]
    mask = torch.zeros(3, 12, dtype=torch.long)
    for row, length in enumerate(lengths):
        ids[row, length - 1] = 2
        ids[row, length:] = pad
        mask[row, :length] = 1
    return ids, mask, torch.zeros_like(ids)


def bert_inputs(pad: int):
    g = torch.Generator().manual_seed(12)
    ids = torch.randint(5, 100, (3, 10), generator=g)
    ids[:, 0] = 2
    lengths = [10, 6, 3]
    mask = torch.zeros(3, 10, dtype=torch.long)
    types = torch.zeros(3, 10, dtype=torch.long)
    for row, length in enumerate(lengths):
        ids[row, length - 1] = 3
        ids[row, length:] = pad
        mask[row, :length] = 1
        # The second half of each real sequence is the second sentence of a pair.
        types[row, length // 2 : length] = 1
    return ids, mask, types


def run_case(name, model, lora_config, inputs, seed):
    folder = os.path.join(OUT, name)
    os.makedirs(folder, exist_ok=True)
    model.eval()
    model.save_pretrained(folder, safe_serialization=True)

    ids, mask, types = inputs
    expected = {
        "input_ids": ids.clone(),
        "attention_mask": mask.clone(),
        "token_type_ids": types.clone(),
    }
    with torch.no_grad():
        base = model(input_ids=ids, attention_mask=mask, token_type_ids=types, output_attentions=True)
    expected["base.last_hidden_state"] = base.last_hidden_state
    for index, attention in enumerate(base.attentions):
        expected[f"base.attentions.{index}"] = attention

    # Gradients with respect to each attention map (eval mode, so the map that eager
    # attention returns is the one that multiplies the values), for a weighted sum of
    # the masked-mean pooled features.
    g = torch.Generator().manual_seed(seed + 100)
    attention_weights = torch.randn(ids.shape[0], model.config.hidden_size, generator=g)
    traced = model(input_ids=ids, attention_mask=mask, token_type_ids=types, output_attentions=True)
    for attention in traced.attentions:
        attention.retain_grad()
    m = mask.unsqueeze(-1).to(traced.last_hidden_state.dtype)
    pooled = (traced.last_hidden_state * m).sum(1) / m.sum(1)
    (pooled * attention_weights).sum().backward()
    expected["attention_loss_weights"] = attention_weights
    for index, attention in enumerate(traced.attentions):
        expected[f"base.attention_grads.{index}"] = attention.grad.detach().clone()
    model.zero_grad()

    peft_model = get_peft_model(model, lora_config)
    trainable_count, total_count = count_parameters(peft_model)
    # A fresh adapter has zero up-projections, so its gradients would be trivial:
    # give every lora_B (and every bias) a random value, as after training.
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param_name, param in peft_model.named_parameters():
            if "lora_B" in param_name:
                param.copy_(torch.randn(param.shape, generator=g) * 0.2)
            elif param.requires_grad and param_name.endswith("bias"):
                param.add_(torch.randn(param.shape, generator=g) * 0.05)
    peft_model.save_pretrained(os.path.join(folder, "adapter"), safe_serialization=True)
    # peft also writes a model-card template; the tests need only the config and weights.
    os.remove(os.path.join(folder, "adapter", "README.md"))
    peft_model.eval()

    out = peft_model(input_ids=ids, attention_mask=mask, token_type_ids=types)
    hidden = out.last_hidden_state
    m = mask.unsqueeze(-1).to(hidden.dtype)
    pooled_masked = (hidden * m).sum(1) / m.sum(1)
    pooled_mean = hidden.mean(1)
    weights = torch.randn(pooled_masked.shape, generator=g)
    loss = (pooled_masked * weights).sum() + 0.5 * (pooled_mean * weights).sum()
    loss.backward()

    expected["lora.last_hidden_state"] = hidden.detach()
    expected["lora.pooled_masked"] = pooled_masked.detach()
    expected["lora.pooled_mean"] = pooled_mean.detach()
    expected["loss_weights"] = weights
    expected["loss"] = loss.detach().reshape(1)
    trainable = []
    for param_name, param in peft_model.named_parameters():
        if not param.requires_grad:
            continue
        ours = peft_name_to_ours(param_name)
        trainable.append(ours)
        if param.grad is not None:
            expected[f"grad.{ours}"] = param.grad.detach().clone()

    # Merged adapter: the same outputs from plain weights.
    merged = peft_model.merge_and_unload()
    with torch.no_grad():
        merged_out = merged(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
    expected["merged.last_hidden_state"] = merged_out

    save_file({k: v.contiguous() for k, v in expected.items()}, os.path.join(folder, "expected.safetensors"))
    with open(os.path.join(folder, "expected.json"), "w") as f:
        json.dump({"trainable": sorted(trainable), "trainable_count": trainable_count, "total_count": total_count}, f, indent=1)
    print(f"{name}: {len(expected)} tensors, trainable {trainable_count} of {total_count}")


def count_parameters(peft_model):
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in peft_model.parameters())
    return trainable, total


def tiny_roberta():
    torch.manual_seed(0)
    config = RobertaConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=64, type_vocab_size=1, pad_token_id=1, bos_token_id=0, eos_token_id=2,
        layer_norm_eps=1e-5, initializer_range=0.2, attn_implementation="eager",
    )
    model = RobertaModel(config)
    # Reference settings of MoRE's text encoder.
    lora = LoraConfig(r=16, lora_alpha=8, lora_dropout=0.1, bias="all", task_type="FEATURE_EXTRACTION")
    run_case("roberta-tiny", model, lora, roberta_inputs(1), seed=21)


def tiny_bert():
    torch.manual_seed(1)
    config = BertConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48,
        max_position_embeddings=40, type_vocab_size=2, pad_token_id=0, layer_norm_eps=1e-12,
        initializer_range=0.2, attn_implementation="eager",
    )
    model = BertModel(config)
    lora = LoraConfig(
        r=4, lora_alpha=8, lora_dropout=0.0, bias="lora_only", target_modules=["query", "key", "value", "dense"],
        task_type="FEATURE_EXTRACTION",
    )
    run_case("bert-tiny", model, lora, bert_inputs(0), seed=22)


def roberta_base_counts():
    """Counts peft's trainable and total parameters for roberta-base with the reference LoRA."""
    config = RobertaConfig(
        vocab_size=50265, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
        max_position_embeddings=514, type_vocab_size=1, pad_token_id=1, bos_token_id=0, eos_token_id=2,
        layer_norm_eps=1e-5,
    )
    with torch.device("meta"):
        model = RobertaModel(config)
    base_total = sum(p.numel() for p in model.parameters())
    lora = LoraConfig(r=16, lora_alpha=8, lora_dropout=0.1, bias="all", task_type="FEATURE_EXTRACTION")
    peft_model = get_peft_model(model, lora)
    trainable, total = count_parameters(peft_model)
    record = {
        "config": config.to_diff_dict() | {"model_type": "roberta", "hidden_act": "gelu"},
        "lora": {"r": 16, "lora_alpha": 8, "lora_dropout": 0.1, "bias": "all", "target_modules": ["query", "value"]},
        "base_total": base_total,
        "trainable": trainable,
        "total": total,
    }
    with open(os.path.join(OUT, "roberta-base-counts.json"), "w") as f:
        json.dump(record, f, indent=1, sort_keys=True)
    print(f"roberta-base: base {base_total}, with LoRA trainable {trainable} of {total}")


def half_precision_file():
    """Writes F32, F16 and BF16 tensors plus their float32 widening for the reader and writer tests."""
    special = torch.tensor([0.0, -0.0, 1.0, -2.0, 0.5, 1e-8, 6e-5, 3e-7, 65504.0, 65520.0, 70000.0, 1e30, -1e-3,
                            3.14159265, 1 / 3, 0.1])
    g = torch.Generator().manual_seed(5)
    values = torch.cat([special, torch.randn(48, generator=g) * 10]).reshape(8, 8)
    tensors = {
        "values.f32": values.clone(),
        "values.f16": values.to(torch.float16),
        "values.bf16": values.to(torch.bfloat16),
        "widened.f16": values.to(torch.float16).to(torch.float32),
        "widened.bf16": values.to(torch.bfloat16).to(torch.float32),
        "scalar.f32": torch.tensor(2.5),
        "empty.f32": torch.zeros(0, 3),
        "ids.i64": torch.tensor([[0, 5, 2], [0, 7, 1]], dtype=torch.int64),
    }
    save_file(tensors, os.path.join(OUT, "dtypes.safetensors"), metadata={"format": "pt", "source": "model_text.py"})
    print("dtypes.safetensors written")


# ---------------------------------------------------------------------------
# A tiny model with the reference MoRE `MultiModal` layout and state_dict names,
# for the checkpoint import test. Widths follow more-ts's `tiny` preset with
# 64 x 64 X-rays in 16-pixel patches.

# The documented one-line conversion of a reference `.pth` state_dict to safetensors.
CONVERSION = (
    "import torch; from safetensors.torch import save_file; "
    "s = torch.load('MODEL.pth', map_location='cpu'); "
    "save_file({k: v.contiguous() for k, v in s.items()}, 'MODEL.safetensors')"
)


class VitAttention(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.proj = nn.Linear(width, width)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(x).reshape(B, T, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        attention = ((q * (C // self.heads) ** -0.5) @ k.transpose(-2, -1)).softmax(-1)
        return self.proj((attention @ v).transpose(1, 2).reshape(B, T, C))


class VitMlp(nn.Module):
    def __init__(self, width, hidden):
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class VitBlock(nn.Module):
    def __init__(self, width, heads, hidden):
        super().__init__()
        self.norm1 = nn.LayerNorm(width, eps=1e-6)
        self.attn = VitAttention(width, heads)
        self.norm2 = nn.LayerNorm(width, eps=1e-6)
        self.mlp = VitMlp(width, hidden)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ImagePatches(nn.Module):
    def __init__(self, width, patch):
        super().__init__()
        self.proj = nn.Conv2d(3, width, patch, patch)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class EcgPatches(nn.Module):
    def __init__(self, channels, width):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv1d(12, channels, 5, 5), nn.ReLU(), nn.BatchNorm1d(channels))
        self.conv2 = nn.Sequential(nn.Conv1d(channels, width, 5, 1), nn.ReLU(), nn.BatchNorm1d(width))

    def forward(self, x):
        return self.conv2(self.conv1(x)).permute(0, 2, 1)


class Vit(nn.Module):
    """timm's VisionTransformer layout (class token, learned positions, pre-norm blocks, final norm)."""

    def __init__(self, patch_embed, tokens, width=64, depth=2, heads=2, hidden=128):
        super().__init__()
        self.cls_token = nn.Parameter(torch.randn(1, 1, width) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(1, tokens + 1, width) * 0.02)
        self.patch_embed = patch_embed
        self.blocks = nn.Sequential(*[VitBlock(width, heads, hidden) for _ in range(depth)])
        self.norm = nn.LayerNorm(width, eps=1e-6)

    def forward(self, x):
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], 1) + self.pos_embed
        return self.norm(self.blocks(x))[:, 0]


class Tower(nn.Module):
    def __init__(self, vit):
        super().__init__()
        self.vit_model = vit


class LinearLayer(nn.Module):
    def __init__(self, inputs, outputs):
        super().__init__()
        self.linear = nn.Linear(inputs, outputs, bias=False)
        self.bn = nn.BatchNorm1d(outputs)

    def forward(self, x):
        return self.bn(self.linear(x))


class ProjectionHead(nn.Module):
    def __init__(self, inputs, outputs, hidden):
        super().__init__()
        self.layers = nn.Sequential(LinearLayer(inputs, hidden), nn.ReLU(), LinearLayer(hidden, outputs))

    def forward(self, x):
        return self.layers(x)


class TinyMultiModal(nn.Module):
    def __init__(self, text_config):
        super().__init__()
        lora = LoraConfig(r=16, lora_alpha=8, lora_dropout=0.1, bias="all", task_type="FEATURE_EXTRACTION")
        self.text_model = get_peft_model(RobertaModel(text_config), lora)
        self.ecg_model = Tower(Vit(EcgPatches(32, 64), 196))
        self.xray_model = Tower(Vit(ImagePatches(64, 16), 16))
        self.projector_xray_text = ProjectionHead(64, 32, 64)
        self.projector_ecg_text = ProjectionHead(64, 32, 64)
        self.projector_text = ProjectionHead(64, 32, 64)

    def forward(self, xray, ecg, ids, mask):
        xray_p = self.projector_xray_text(self.xray_model.vit_model(xray))
        ecg_p = self.projector_ecg_text(self.ecg_model.vit_model(ecg))
        # The reference averages the last hidden states over every position, padding included.
        note = self.text_model(ids, attention_mask=mask).last_hidden_state.mean(dim=1)
        return xray_p, ecg_p, self.projector_text(note)


def more_tiny():
    torch.manual_seed(3)
    text_config = RobertaConfig(
        vocab_size=100, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
        max_position_embeddings=40, type_vocab_size=1, pad_token_id=1, bos_token_id=0, eos_token_id=2,
        layer_norm_eps=1e-5, initializer_range=0.1, attn_implementation="eager",
    )
    model = TinyMultiModal(text_config)
    g = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=g) * 0.2)
        for module in model.modules():
            if isinstance(module, nn.BatchNorm1d):
                module.running_mean.copy_(torch.randn(module.num_features, generator=g) * 0.1)
                module.running_var.copy_(torch.rand(module.num_features, generator=g) + 0.5)
                module.weight.copy_(torch.rand(module.num_features, generator=g) + 0.5)
                module.bias.copy_(torch.randn(module.num_features, generator=g) * 0.1)
                module.num_batches_tracked.fill_(7)
    model.eval()

    folder = os.path.join(OUT, "more-tiny")
    os.makedirs(folder, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        torch.save(model.state_dict(), os.path.join(scratch, "MODEL.pth"))
        subprocess.run([sys.executable, "-c", CONVERSION], cwd=scratch, check=True)
        os.replace(os.path.join(scratch, "MODEL.safetensors"), os.path.join(folder, "reference.safetensors"))

    xray = torch.randn(2, 3, 64, 64, generator=g)
    ecg = torch.rand(2, 12, 1000, generator=g) * 2 - 1
    ids = torch.randint(3, 100, (2, 10), generator=g)
    ids[:, 0] = 0
    ids[0, 9] = 2
    ids[1, 6] = 2
    ids[1, 7:] = 1
    mask = (ids != 1).long()
    with torch.no_grad():
        xray_p, ecg_p, text_p = model(xray, ecg, ids, mask)
    save_file({
        "xray": xray, "ecg": ecg, "input_ids": ids, "attention_mask": mask,
        "image_embedding": xray_p, "ecg_embedding": ecg_p, "text_embedding": text_p,
    }, os.path.join(folder, "expected.safetensors"))
    with open(os.path.join(folder, "text-config.json"), "w") as f:
        json.dump(text_config.to_dict() | {"model_type": "roberta"}, f, indent=1, sort_keys=True)
    print(f"more-tiny: {len(model.state_dict())} reference tensors")


def minilm_outputs(folder):
    """Runs transformers' BertModel from a Hugging Face folder (all-MiniLM-L6-v2) on three report sentences.

    Writes test/fixtures/model/text/minilm-expected.safetensors for the
    optional real-checkpoint test, which runs when MORE_TS_MINILM names the folder.
    """
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
    sentences = [
        "The heart size is normal.",
        "Mild cardiomegaly with small bilateral pleural effusions and no pneumothorax.",
        "Sinus rhythm. Left axis deviation.",
    ]
    encoded = tokenizer.encode_batch(sentences)
    ids = torch.tensor([e.ids for e in encoded])
    mask = torch.tensor([e.attention_mask for e in encoded])
    model = BertModel.from_pretrained(folder).eval()
    with torch.no_grad():
        hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
    m = mask.unsqueeze(-1).float()
    save_file({
        "input_ids": ids, "attention_mask": mask, "last_hidden_state": hidden.contiguous(),
        "pooled_masked": ((hidden * m).sum(1) / m.sum(1)).contiguous(),
    }, os.path.join(OUT, "minilm-expected.safetensors"), metadata={"model": "sentence-transformers/all-MiniLM-L6-v2"})
    print(f"minilm: {list(ids.shape)} tokens")


def check_ts_file(path):
    """Loads a file from the TypeScript writer and checks it against torch's own rounding of dtypes.safetensors."""
    from safetensors import safe_open

    tensors = load_file(path)
    with safe_open(path, "pt") as opened:
        print("metadata:", opened.metadata())
    for name, tensor in tensors.items():
        print(name, tensor.dtype, list(tensor.shape), tensor.flatten()[:4].tolist())
    exact = load_file(os.path.join(OUT, "dtypes.safetensors"))["values.f32"].flatten()
    expected = {
        "w.f32": (torch.float32, exact),
        "w.f16": (torch.float16, exact.to(torch.float16)),
        "w.bf16": (torch.bfloat16, exact.to(torch.bfloat16)),
    }
    for name, (dtype, values) in expected.items():
        tensor = tensors[name]
        assert tensor.dtype == dtype, f"{name}: dtype {tensor.dtype}, expected {dtype}"
        same = tensor.flatten().view(torch.int16 if dtype != torch.float32 else torch.int32)
        reference = values.view(torch.int16 if dtype != torch.float32 else torch.int32)
        assert torch.equal(same, reference), f"{name}: bits differ from torch's rounding"
    assert tensors["scalar"].shape == () and tensors["scalar"].item() == 2.5
    print(f"{path}: {len(tensors)} tensors load and match torch bit for bit")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check-ts-file", help="load a safetensors file written by the TypeScript writer and print it")
    parser.add_argument("--minilm", help="an all-MiniLM-L6-v2 Hugging Face folder: write only its reference outputs")
    args = parser.parse_args()
    if args.check_ts_file:
        check_ts_file(args.check_ts_file)
        return
    if args.minilm:
        minilm_outputs(args.minilm)
        return
    os.makedirs(OUT, exist_ok=True)
    torch.set_grad_enabled(True)
    tiny_roberta()
    tiny_bert()
    half_precision_file()
    more_tiny()
    roberta_base_counts()
    ts_written = os.path.join(OUT, "ts-written.safetensors")
    if os.path.exists(ts_written):
        check_ts_file(ts_written)


if __name__ == "__main__":
    main()
