"""PyTorch side of bench/model.ts: the same MoRE towers, timed on the CPU.

Takes one JSON argument, the configs, the tower and the timing settings that
bench/model.ts uses, and prints one JSON object. It contains training steps
per second of that tower (encoder, head, InfoNCE against fixed targets and an
Adam update) and inference batches per second of its encoder. Each figure is
the faster of torch's default thread count and one thread. The towers are the PyTorch
modules of reference/model_vision.py, which the parity tests check the
TypeScript towers against.
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "reference"))
import model_vision as reference  # noqa: E402
from timing import rate  # noqa: E402

reference.RECORD_ATTENTION = False


def build_encoder(config):
    """Build the tower named by config["tower"] ("image" or "ecg") and a matching random input batch."""
    batch = config["batch"]
    if config["tower"] == "image":
        image = config["image"]
        grid = image["imageSize"] // image["patchSize"]
        encoder = reference.VisionTransformer(
            reference.ImagePatchEmbed(image["patchSize"], image["channels"], image["width"]), grid * grid,
            image["width"], image["depth"], image["heads"], image["mlpDim"], image["dropKeyRate"],
        )
        return encoder, torch.randn(batch, image["channels"], image["imageSize"], image["imageSize"])
    ecg = config["ecg"]
    embed = reference.EcgPatchEmbed(dict(
        leads=ecg["leads"], conv_channels=ecg["convChannels"], conv1_kernel=ecg["conv1Kernel"],
        conv1_stride=ecg["conv1Stride"], conv2_kernel=ecg["conv2Kernel"], width=ecg["width"],
    ))
    tokens = (ecg["samples"] - ecg["conv1Kernel"]) // ecg["conv1Stride"] + 1 - ecg["conv2Kernel"] + 1
    encoder = reference.VisionTransformer(embed, tokens, ecg["width"], ecg["depth"], ecg["heads"], ecg["mlpDim"],
                                          ecg["dropKeyRate"])
    return encoder, torch.randn(batch, ecg["leads"], ecg["samples"])



def main():
    settings = json.loads(sys.argv[1])
    torch.manual_seed(0)
    encoder, inputs = build_encoder(settings)
    head_config = settings["head"]
    head = reference.ProjectionHead(head_config["inputDim"], head_config["hiddenDim"], head_config["outputDim"])
    targets = torch.randn(settings["batch"], head_config["outputDim"])
    optimizer = torch.optim.Adam([*encoder.parameters(), *head.parameters()], lr=3e-5)

    def train_step():
        encoder.train()
        head.train()
        optimizer.zero_grad(set_to_none=True)
        loss = reference.info_nce(head(encoder(inputs)), targets, temperature=0.02)
        loss.backward()
        optimizer.step()

    def infer_step():
        encoder.eval()
        with torch.no_grad():
            encoder(inputs)

    timing = settings["timing"]
    # Inference first, on the initial weights, as bench/model.ts measures it.
    figures = {
        "infer_batches_per_second": (infer_step, timing["inferSeconds"], timing["inferIterations"]),
        "train_steps_per_second": (train_step, timing["trainSeconds"], timing["trainIterations"]),
    }
    # On a busy shared machine torch's spinning worker threads can be many times slower than
    # one thread, so each figure is the faster of the two settings.
    default_threads = torch.get_num_threads()
    result = {"torch": torch.__version__, "threads": {}}
    for name, (step, seconds, iterations) in figures.items():
        best = (0.0, default_threads)
        for threads in sorted({default_threads, 1}, reverse=True):
            torch.set_num_threads(threads)
            best = max(best, (rate(step, seconds, iterations), threads))
        torch.set_num_threads(default_threads)
        result[name] = best[0]
        result["threads"][name] = best[1]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
