"""Fixtures for the X-ray ViT, ECG encoder, projection heads and losses (test/model/vision*, heads*, loss*).

Builds tiny random configurations in PyTorch with the MoRE reference's
structure. The ViT follows timm's VisionTransformer: class token, learned
position embeddings, pre-norm blocks, LayerNorm eps 1e-6, exact GELU, qkv
without bias, and the class token after the final norm as the pooled output.
The ECG variant swaps in the Conv1d + ReLU + BatchNorm1d patch embedding.
The heads are the nonlinear and linear projection heads, and the loss is
symmetric InfoNCE. Every case runs in eval mode (DropKey off) unless its
docstring states otherwise. Weights, inputs, outputs and gradients are
stored as safetensors under test/fixtures/model/vision/.

The fixtures come from the hand-written modules below (plain torch layers
under timm's parameter names). When timm imports, the script first checks
that timm's own `VisionTransformer` gives the same pooled output within 1e-5.
For the ECG case it swaps in the ECG patch embedding, as the MoRE reference
does. The file metadata then names timm as the oracle. When timm does not
import, the metadata records that only torch was used.

Run: /work/main/.venv/bin/python reference/model_vision.py
"""
import json
import math
import os

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "test", "fixtures", "model", "vision")

try:
    import timm
    from timm.models.vision_transformer import VisionTransformer as TimmVisionTransformer

    ORACLE = f"timm {timm.__version__}"
except Exception as error:  # noqa: BLE001 - any import failure means timm is unusable here
    # NOTE: timm imports torchvision unconditionally, and a torchvision build that
    # does not match the installed torch fails to load (a RuntimeError, not ImportError).
    TimmVisionTransformer = None
    ORACLE = f"torch {torch.__version__} (timm unavailable: {type(error).__name__})"
    print(f"NOTE: timm could not be imported ({error}); using the plain torch ViT as the oracle")

VIT = dict(image_size=32, patch_size=8, channels=3, width=32, depth=2, heads=4, mlp_dim=64)
ECG = dict(leads=12, samples=100, conv_channels=16, conv1_kernel=5, conv1_stride=5, conv2_kernel=5,
           width=32, depth=2, heads=4, mlp_dim=64)
HEAD = dict(input_dim=32, hidden_dim=32, output_dim=16)
BATCH = 4
# Keep each layer's attention map and its gradient for the fixtures; bench/model.py turns this off.
RECORD_ATTENTION = True


class Attention(nn.Module):
    """Multi-head self-attention without qkv bias, where DropKey masks logits in training."""

    def __init__(self, width, heads, drop_key_rate=0.0):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.proj = nn.Linear(width, width)
        self.drop_key_rate = drop_key_rate
        self.last_attention = None

    def forward(self, x):
        B, T, C = x.shape
        D = C // self.heads
        q, k, v = self.qkv(x).reshape(B, T, 3, self.heads, D).permute(2, 0, 3, 1, 4).unbind(0)
        logits = (q * D ** -0.5) @ k.transpose(-2, -1)
        if self.training and self.drop_key_rate > 0:
            logits = logits + torch.bernoulli(torch.full_like(logits, self.drop_key_rate)) * -1e12
        attention = logits.softmax(dim=-1)
        if RECORD_ATTENTION:
            if attention.requires_grad:
                attention.retain_grad()
            self.last_attention = attention
        return self.proj((attention @ v).transpose(1, 2).reshape(B, T, C))


class Mlp(nn.Module):
    def __init__(self, width, hidden):
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, width, heads, mlp_dim, drop_key_rate=0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(width, eps=1e-6)
        self.attn = Attention(width, heads, drop_key_rate)
        self.norm2 = nn.LayerNorm(width, eps=1e-6)
        self.mlp = Mlp(width, mlp_dim)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ImagePatchEmbed(nn.Module):
    def __init__(self, patch_size, channels, width):
        super().__init__()
        self.proj = nn.Conv2d(channels, width, patch_size, stride=patch_size)

    def forward(self, images):
        return self.proj(images).flatten(2).transpose(1, 2)


class EcgPatchEmbed(nn.Module):
    """Conv1d + ReLU + BatchNorm1d twice, as the MoRE reference's ECG patch embedding."""

    def __init__(self, c):
        super().__init__()
        self.conv1 = nn.Sequential(
            nn.Conv1d(c["leads"], c["conv_channels"], c["conv1_kernel"], stride=c["conv1_stride"]),
            nn.ReLU(),
            nn.BatchNorm1d(c["conv_channels"]),
        )
        self.conv2 = nn.Sequential(
            nn.Conv1d(c["conv_channels"], c["width"], c["conv2_kernel"], stride=1),
            nn.ReLU(),
            nn.BatchNorm1d(c["width"]),
        )

    def forward(self, signals):
        return self.conv2(self.conv1(signals)).permute(0, 2, 1)


class VisionTransformer(nn.Module):
    """A ViT under timm's parameter names, pooled by the class token after the final norm."""

    def __init__(self, patch_embed, tokens, width, depth, heads, mlp_dim, drop_key_rate=0.0):
        super().__init__()
        self.patch_embed = patch_embed
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.pos_embed = nn.Parameter(torch.zeros(1, tokens + 1, width))
        self.blocks = nn.ModuleList([Block(width, heads, mlp_dim, drop_key_rate) for _ in range(depth)])
        self.norm = nn.LayerNorm(width, eps=1e-6)

    def forward(self, x):
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.norm(x)[:, 0]


def randomise(module, generator):
    """Gives every parameter and BatchNorm buffer random values, so no weight sits at its default."""
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            if name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
            elif name.endswith("norm.weight") or name.endswith("norm1.weight") or name.endswith("norm2.weight") or name.endswith(".bn.weight"):
                tensor.copy_(1 + 0.2 * torch.randn(tensor.shape, generator=generator))
            else:
                tensor.copy_(0.3 * torch.randn(tensor.shape, generator=generator))


def build_vit():
    c = VIT
    grid = c["image_size"] // c["patch_size"]
    return VisionTransformer(ImagePatchEmbed(c["patch_size"], c["channels"], c["width"]), grid * grid,
                             c["width"], c["depth"], c["heads"], c["mlp_dim"])


def build_ecg():
    c = ECG
    tokens = (c["samples"] - c["conv1_kernel"]) // c["conv1_stride"] + 1 - c["conv2_kernel"] + 1
    return VisionTransformer(EcgPatchEmbed(c), tokens, c["width"], c["depth"], c["heads"], c["mlp_dim"])


def check_against_timm(model, inputs, ecg=False):
    """Load our weights into timm's VisionTransformer and check that both give the same pooled output.

    For the ECG encoder, timm's patch embedding is replaced by the convolutional one, as the
    MoRE reference does. timm's 32 x 32 image with 8-pixel patches gives the same 17 positions.
    """
    c = VIT
    timm_model = TimmVisionTransformer(
        img_size=c["image_size"], patch_size=c["patch_size"], in_chans=c["channels"], num_classes=0,
        embed_dim=c["width"], depth=c["depth"], num_heads=c["heads"], mlp_ratio=c["mlp_dim"] / c["width"],
        qkv_bias=False,
    )
    if ecg:
        timm_model.patch_embed = EcgPatchEmbed(ECG)
    timm_model.eval()
    timm_model.load_state_dict(model.state_dict(), strict=True)
    with torch.no_grad():
        difference = (timm_model(inputs) - model(inputs)).abs().max().item()
    name = "ECG" if ecg else "X-ray"
    if difference > 1e-5:
        raise SystemExit(f"hand-written {name} ViT differs from timm's by {difference}")
    print(f"timm check ({name}): max difference {difference:.2e}")


def save(name, tensors, metadata=None):
    path = os.path.join(OUT, name)
    contiguous = {key: value.detach().contiguous().float() for key, value in tensors.items()}
    save_file(contiguous, path, metadata={"oracle": ORACLE, **(metadata or {})})
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


def encoder_case(prefix, model, inputs, layout_input, probe):
    """Run `model` in eval mode and store weights, input, pooled output, attentions and gradients."""
    model.eval()
    weights = {key: value.clone() for key, value in model.state_dict().items()}
    model.zero_grad()
    pooled = model(inputs)
    objective = (pooled * probe).sum()
    objective.backward()
    io = {"input": layout_input, "probe": probe, "pooled": pooled}
    for index, block in enumerate(model.blocks):
        io[f"attention.{index}"] = block.attn.last_attention
        io[f"attention_grad.{index}"] = block.attn.last_attention.grad
    for name, parameter in model.named_parameters():
        io[f"grad.{name}"] = parameter.grad
    save(f"{prefix}_weights.safetensors", weights)
    save(f"{prefix}_io.safetensors", io)


def info_nce(a, b, temperature=None, logit_scale=None):
    """Compute symmetric InfoNCE over L2-normalised rows, pairing row i of `a` with row i of `b`."""
    a = F.normalize(a, dim=1)
    b = F.normalize(b, dim=1)
    multiplier = 1 / temperature if logit_scale is None else logit_scale.clamp(max=math.log(100)).exp()
    logits = a @ b.t() * multiplier
    targets = torch.arange(a.shape[0])
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.t(), targets)) / 2


class LinearLayer(nn.Module):
    def __init__(self, in_features, out_features, bias, norm):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features, bias=bias)
        self.bn = nn.BatchNorm1d(out_features) if norm else None

    def forward(self, x):
        x = self.linear(x)
        return self.bn(x) if self.bn is not None else x


class ProjectionHead(nn.Module):
    def __init__(self, input_dim, hidden_dim, output_dim, kind="nonlinear"):
        super().__init__()
        if kind == "linear":
            self.layers = LinearLayer(input_dim, output_dim, True, False)
        else:
            self.layers = nn.Sequential(
                LinearLayer(input_dim, hidden_dim, False, True),
                nn.ReLU(),
                LinearLayer(hidden_dim, output_dim, False, True),
            )

    def forward(self, x):
        return self.layers(x)


def heads_case(generator):
    """Three nonlinear heads in training mode, the MoRE loss with one missing ECG, and its gradients."""
    heads = {name: ProjectionHead(**HEAD) for name in ("image", "ecg", "text")}
    for head in heads.values():
        randomise(head, generator)
    weights = {}
    for name, head in heads.items():
        for key, value in head.state_dict().items():
            weights[f"{name}.{key}"] = value.clone()
    text_features = torch.randn(BATCH, HEAD["input_dim"], generator=generator)
    image_features = torch.randn(BATCH, HEAD["input_dim"], generator=generator)
    ecg_features = torch.randn(BATCH, HEAD["input_dim"], generator=generator)
    ecg_rows = [0, 2, 3]  # row 1 has no ECG

    for head in heads.values():
        head.train()
    text = heads["text"](text_features)
    image = heads["image"](image_features)
    ecg = heads["ecg"](ecg_features[ecg_rows])
    image_loss = info_nce(text, image, temperature=0.02)
    ecg_loss = info_nce(text[ecg_rows], ecg, temperature=0.02)
    total = image_loss + ecg_loss
    total.backward()

    io = {
        "text_features": text_features,
        "image_features": image_features,
        "ecg_features": ecg_features,
        "ecg_present": torch.tensor([1.0, 0.0, 1.0, 1.0]),
        "text_embedding": text,
        "image_embedding": image,
        "ecg_embedding": ecg,
        "image_loss": image_loss.reshape(1),
        "ecg_loss": ecg_loss.reshape(1),
        "loss": total.reshape(1),
    }
    for name, head in heads.items():
        for key, parameter in head.named_parameters():
            io[f"grad.{name}.{key}"] = parameter.grad
        for key, buffer in head.named_buffers():
            io[f"after.{name}.{key}"] = buffer

    # The linear head in eval mode and a learnable temperature.
    linear = ProjectionHead(**HEAD, kind="linear")
    randomise(linear, generator)
    for key, value in linear.state_dict().items():
        weights[f"linear.{key}"] = value.clone()
    io["linear_embedding"] = linear.eval()(text_features)
    logit_scale = torch.tensor(math.log(1 / 0.07), requires_grad=True)
    learnable_loss = info_nce(text.detach(), image.detach(), logit_scale=logit_scale)
    learnable_loss.backward()
    io["learnable_loss"] = learnable_loss.reshape(1)
    io["grad.logit_scale"] = logit_scale.grad.reshape(1)

    save("heads_weights.safetensors", weights)
    save("heads_io.safetensors", io, {"ecg_rows": json.dumps(ecg_rows), "temperature": "0.02"})


def ecg_train_case(model, signals):
    """Run the ECG encoder in training mode without DropKey and store its output and updated running statistics."""
    model.train()
    with torch.no_grad():
        pooled = model(signals)
    io = {"input": signals, "pooled": pooled}
    for key, buffer in model.named_buffers():
        io[f"after.{key}"] = buffer
    save("ecg_train_io.safetensors", io)


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(20241021)

    vit = build_vit()
    randomise(vit, generator)
    images = torch.randn(BATCH, VIT["channels"], VIT["image_size"], VIT["image_size"], generator=generator)
    if TimmVisionTransformer is not None:
        check_against_timm(vit.eval(), images)
    probe = torch.randn(BATCH, VIT["width"], generator=generator)
    encoder_case("vit", vit, images, images.permute(0, 2, 3, 1), probe)  # stored NHWC

    ecg = build_ecg()
    randomise(ecg, generator)
    signals = torch.randn(BATCH, ECG["leads"], ECG["samples"], generator=generator)
    if TimmVisionTransformer is not None:
        check_against_timm(ecg.eval(), signals, ecg=True)
    probe = torch.randn(BATCH, ECG["width"], generator=generator)
    encoder_case("ecg", ecg, signals, signals, probe)
    ecg_train_case(ecg, signals)

    heads_case(generator)
    with open(os.path.join(OUT, "configs.json"), "w") as handle:
        json.dump({"vit": VIT, "ecg": ECG, "head": HEAD, "batch": BATCH, "oracle": ORACLE}, handle, indent=2)
        handle.write("\n")


if __name__ == "__main__":
    main()
