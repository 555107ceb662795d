"""PyTorch side of bench/backend.ts: the same two figures on the CPU.

Prints one JSON object: matmul GFLOP/s and ViT-Base block forward+backward
iterations per second. Run by the TypeScript benchmark in the same session so
that both see the same machine state.
"""
import json
import os
import sys

import torch
from torch import nn

from timing import rate


class Block(nn.Module):
    """A pre-norm ViT block (timm layout): attention without qkv bias, exact GELU MLP."""

    def __init__(self, width: int, heads: int, mlp: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(width, eps=1e-6)
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width, eps=1e-6)
        self.fc1 = nn.Linear(width, mlp)
        self.fc2 = nn.Linear(mlp, width)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        head_dim = C // self.heads
        qkv = self.qkv(self.norm1(x)).reshape(B, T, 3, self.heads, head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # each (B, heads, T, head_dim)
        attention = (q @ k.transpose(-2, -1)) * head_dim**-0.5
        attention = attention.softmax(dim=-1)
        mixed = (attention @ v).transpose(1, 2).reshape(B, T, C)
        x = x + self.proj(mixed)
        return x + self.fc2(self.act(self.fc1(self.norm2(x))))


def main() -> None:
    config = json.loads(sys.argv[1])
    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)

    n = config["matmul_size"]
    a = torch.randn(n, n)
    b = torch.randn(n, n)
    matmul_rate = rate(lambda: torch.mm(a, b), config["min_seconds"], config["min_iterations"])

    block = Block(config["width"], config["heads"], config["mlp"])
    x = torch.randn(config["batch"], config["tokens"], config["width"])

    def train_step() -> None:
        block.zero_grad(set_to_none=True)
        loss = block(x).square().mean()
        loss.backward()

    block_rate = rate(train_step, config["min_seconds"], config["min_iterations"])
    print(json.dumps({
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "matmul_gflops": 2 * n**3 * matmul_rate / 1e9,
        "block_steps_per_second": block_rate,
    }))


if __name__ == "__main__":
    main()
