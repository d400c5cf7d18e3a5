"""Independent reference for exemplar icons (tests/it/atlas_build.rs): cut dataset-example patches
with Pillow and torchvision, the way a Python user would.

Input: a JSON list of {"path", "preprocess": "squash" | "resize_shorter_crop:N",
"input": [W, H], "rect": [x0, y0, w, h], "out": [w, h], "file"}. For each entry the image is
preprocessed to the model input (squash: PIL BILINEAR resize to W×H; resize_shorter_crop:N:
torchvision Resize(N) + CenterCrop((H, W))), the rectangle is cut out and resized to `out` with
PIL LANCZOS (unchanged when it already has that size), and written as PNG to `file`.
"""
import argparse
import json

from PIL import Image
from torchvision import transforms


def preprocess(img, how, size):
    w, h = size
    if how == "squash":
        return img.resize((w, h), Image.BILINEAR)
    prefix = "resize_shorter_crop:"
    assert how.startswith(prefix), how
    n = int(how[len(prefix):])
    img = transforms.Resize(n, interpolation=transforms.InterpolationMode.BILINEAR)(img)
    return transforms.CenterCrop((h, w))(img)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--entries", required=True)
    args = ap.parse_args()
    with open(args.entries) as f:
        entries = json.load(f)
    cache = {}
    for e in entries:
        key = (e["path"], e["preprocess"], tuple(e["input"]))
        if key not in cache:
            img = Image.open(e["path"]).convert("RGB")
            cache[key] = preprocess(img, e["preprocess"], e["input"])
        x0, y0, w, h = e["rect"]
        patch = cache[key].crop((x0, y0, x0 + w, y0 + h))
        out = tuple(e["out"])
        if patch.size != out:
            patch = patch.resize(out, Image.LANCZOS)
        patch.save(e["file"])


if __name__ == "__main__":
    main()
