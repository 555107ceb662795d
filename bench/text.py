"""PyTorch side of bench/text.ts: the report encoder timed on the CPU.

Takes one JSON argument (the transformers config fields, batch shape, LoRA
settings and timing settings that bench/text.ts uses) and prints one JSON
object with inference batches per second (eval mode, no gradients) and
training steps per second (train mode with dropout, masked-mean pooling,
backward through the LoRA adapters and biases, AdamW update). Each figure is
the faster of torch's default thread count and one thread.
"""
import json
import sys

# The environment's torchvision wheel is a CUDA build that fails to load next to
# the CPU torch, and transformers imports it when present. Nothing here needs it.
sys.modules["torchvision"] = None

import torch  # noqa: E402
from peft import LoraConfig, get_peft_model  # noqa: E402
from transformers import RobertaConfig, RobertaModel  # noqa: E402

from timing import rate  # noqa: E402


def measure(settings):
    torch.manual_seed(0)
    config = RobertaConfig(**settings["config"], attn_implementation="eager")
    model = RobertaModel(config)
    lora = settings["lora"]
    model = get_peft_model(model, LoraConfig(
        r=lora["r"], lora_alpha=lora["alpha"], lora_dropout=lora["dropout"], bias=lora["bias"],
        target_modules=lora["targetModules"], task_type="FEATURE_EXTRACTION",
    ))
    batch, length = settings["batch"], settings["length"]
    ids = torch.randint(3, config.vocab_size, (batch, length))
    mask = torch.ones(batch, length, dtype=torch.long)
    mask[batch // 2:, length // 2:] = 0
    ids[mask == 0] = config.pad_token_id
    weights = torch.randn(batch, config.hidden_size)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-5, weight_decay=0.1)

    def pooled():
        hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
        m = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * m).sum(1) / m.sum(1)

    def infer():
        model.eval()
        with torch.no_grad():
            pooled()

    def train():
        model.train()
        loss = (pooled() * weights).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    timing = settings["timing"]
    return {
        "inferBatchesPerSecond": rate(infer, timing["inferSeconds"], timing["inferIterations"]),
        "trainStepsPerSecond": rate(train, timing["trainSeconds"], timing["trainIterations"]),
    }


def main():
    settings = json.loads(sys.argv[1])
    default_threads = torch.get_num_threads()
    results = [measure(settings)]
    if default_threads > 1:
        torch.set_num_threads(1)
        results.append(measure(settings))
        torch.set_num_threads(default_threads)
    best = {key: max(result[key] for result in results) for key in results[0]}
    print(json.dumps(best | {"threads": default_threads}))


if __name__ == "__main__":
    main()
