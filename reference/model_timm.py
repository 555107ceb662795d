"""Fixtures for importing timm ViT checkpoints (test/model/timm-import.test.ts).

Builds tiny random `timm.models.vision_transformer.VisionTransformer` models
(32 x 32 images, 8 x 8 patches, width 32, depth 2, 2 heads, class-token
pooling) and saves each `state_dict` with safetensors under timm's own names.
For one input batch it records timm's eval-mode outputs: `forward_features`
(the normed tokens) and the pooled features, which
`forward_head(..., pre_logits=True)` returns as the class token.

Two models are written:
- `vit_no_qkv_bias`: qkv without bias and no classifier (num_classes=0), the
  layout MoRE uses. Its outputs are what an import must reproduce.
- `vit_qkv_bias`: qkv with a random bias and a 3-class head. Its outputs are
  recorded twice, as trained and with every qkv bias set to zero. The second
  is what a model without qkv bias computes after the import drops the bias.

Every parameter, LayerNorm and bias included, is drawn at random so that a
weight loaded into the wrong place changes the outputs.

Run: /work/main/.venv/bin/python reference/model_timm.py
"""
import json
import os

import timm
import torch
from safetensors.torch import save_file
from timm.models.vision_transformer import VisionTransformer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "test", "fixtures", "model", "timm")

CONFIG = dict(img_size=32, patch_size=8, in_chans=3, embed_dim=32, depth=2, num_heads=2, mlp_ratio=4.0,
              class_token=True, global_pool="token")
BATCH = 2


def randomize(model, generator):
    """Overwrites every parameter with random values (LayerNorm weights near 1, linear weights scaled by fan-in)."""
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            noise = torch.randn(parameter.shape, generator=generator)
            if name.endswith("norm1.weight") or name.endswith("norm2.weight") or name == "norm.weight":
                parameter.copy_(1.0 + 0.2 * noise)
            elif parameter.dim() == 1 or name in ("cls_token", "pos_embed"):
                parameter.copy_(0.1 * noise)
            else:
                fan_in = parameter[0].numel()
                parameter.copy_(noise / fan_in ** 0.5)


def outputs(model, images):
    with torch.no_grad():
        features = model.forward_features(images)
        pooled = model.forward_head(features, pre_logits=True)
    return features.contiguous(), pooled.contiguous()


def build(qkv_bias, num_classes, seed):
    torch.manual_seed(seed)
    model = VisionTransformer(**CONFIG, qkv_bias=qkv_bias, num_classes=num_classes)
    randomize(model, torch.Generator().manual_seed(seed))
    return model.eval()


def metadata(name, qkv_bias, num_classes):
    config = dict(CONFIG, qkv_bias=qkv_bias, num_classes=num_classes)
    return {
        "name": name,
        "timm_config": json.dumps(config),
        "oracle": f"timm {timm.__version__}, torch {torch.__version__}",
    }


def main():
    os.makedirs(OUT, exist_ok=True)
    images = torch.randn(BATCH, CONFIG["in_chans"], CONFIG["img_size"], CONFIG["img_size"],
                         generator=torch.Generator().manual_seed(7))
    # Our encoder takes NHWC images, while timm takes NCHW.
    images_nhwc = images.permute(0, 2, 3, 1).contiguous()

    plain = build(qkv_bias=False, num_classes=0, seed=1)
    meta = metadata("vit_no_qkv_bias", False, 0)
    save_file({k: v.contiguous() for k, v in plain.state_dict().items()},
              os.path.join(OUT, "vit_no_qkv_bias.safetensors"), metadata=meta)
    features, pooled = outputs(plain, images)
    save_file({"images_nhwc": images_nhwc, "features": features, "pooled": pooled},
              os.path.join(OUT, "vit_no_qkv_bias_outputs.safetensors"), metadata=meta)

    biased = build(qkv_bias=True, num_classes=3, seed=2)
    meta = metadata("vit_qkv_bias", True, 3)
    save_file({k: v.contiguous() for k, v in biased.state_dict().items()},
              os.path.join(OUT, "vit_qkv_bias.safetensors"), metadata=meta)
    features, pooled = outputs(biased, images)
    with torch.no_grad():
        for block in biased.blocks:
            block.attn.qkv.bias.zero_()
    features_dropped, pooled_dropped = outputs(biased, images)
    save_file({
        "images_nhwc": images_nhwc,
        "features": features,
        "pooled": pooled,
        "features_without_qkv_bias": features_dropped,
        "pooled_without_qkv_bias": pooled_dropped,
    }, os.path.join(OUT, "vit_qkv_bias_outputs.safetensors"), metadata=meta)

    for name in sorted(os.listdir(OUT)):
        print(name, os.path.getsize(os.path.join(OUT, name)), "bytes")
    print("state_dict keys:", ", ".join(biased.state_dict().keys()))


if __name__ == "__main__":
    main()
