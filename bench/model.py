"""PyTorch side of bench/model.ts: the same MoRE towers, timed on the CPU.

Takes one JSON argument, the configs and timing settings that bench/model.ts
uses, and prints one JSON object. It contains training steps per second of
the X-ray and ECG towers with their heads and InfoNCE (Adam update included)
and inference batches per second of each encoder. Each figure is the faster
of torch's default thread count and one thread. The towers are the PyTorch
modules of reference/model_vision.py, which the parity tests check the
TypeScript towers against.
"""
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "reference"))
import model_vision as reference  # noqa: E402

reference.RECORD_ATTENTION = False


def build(config):
    image = config["image"]
    grid = image["imageSize"] // image["patchSize"]
    vit = reference.VisionTransformer(
        reference.ImagePatchEmbed(image["patchSize"], image["channels"], image["width"]), grid * grid,
        image["width"], image["depth"], image["heads"], image["mlpDim"], image["dropKeyRate"],
    )
    ecg = config["ecg"]
    embed = reference.EcgPatchEmbed(dict(
        leads=ecg["leads"], conv_channels=ecg["convChannels"], conv1_kernel=ecg["conv1Kernel"],
        conv1_stride=ecg["conv1Stride"], conv2_kernel=ecg["conv2Kernel"], width=ecg["width"],
    ))
    tokens = (ecg["samples"] - ecg["conv1Kernel"]) // ecg["conv1Stride"] + 1 - ecg["conv2Kernel"] + 1
    ecg_model = reference.VisionTransformer(embed, tokens, ecg["width"], ecg["depth"], ecg["heads"], ecg["mlpDim"],
                                            ecg["dropKeyRate"])
    head = config["head"]
    heads = [reference.ProjectionHead(head["inputDim"], head["hiddenDim"], head["outputDim"]) for _ in range(2)]
    return vit, ecg_model, heads


def rate(step, min_seconds, min_iterations):
    """Return calls per second of `step` after one warm-up call."""
    step()
    iterations = 0
    started = time.perf_counter()
    while iterations < min_iterations or time.perf_counter() - started < min_seconds:
        step()
        iterations += 1
    return iterations / (time.perf_counter() - started)


def main():
    settings = json.loads(sys.argv[1])
    torch.manual_seed(0)
    vit, ecg_model, heads = build(settings)
    batch = settings["batch"]
    image = settings["image"]
    ecg = settings["ecg"]
    images = torch.randn(batch, image["channels"], image["imageSize"], image["imageSize"])
    signals = torch.randn(batch, ecg["leads"], ecg["samples"])
    parameters = [p for module in (vit, ecg_model, *heads) for p in module.parameters()]
    optimizer = torch.optim.Adam(parameters, lr=3e-5)

    def train_step():
        for module in (vit, ecg_model, *heads):
            module.train()
        optimizer.zero_grad(set_to_none=True)
        loss = reference.info_nce(heads[0](vit(images)), heads[1](ecg_model(signals)), temperature=0.02)
        loss.backward()
        optimizer.step()

    def infer(model, inputs):
        def step():
            model.eval()
            with torch.no_grad():
                model(inputs)
        return step

    timing = settings["timing"]
    figures = {
        "train_steps_per_second": (train_step, timing["trainSeconds"], timing["trainIterations"]),
        "image_batches_per_second": (infer(vit, images), timing["inferSeconds"], timing["inferIterations"]),
        "ecg_batches_per_second": (infer(ecg_model, signals), timing["inferSeconds"], timing["inferIterations"]),
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
