"""What each optional extra adds to an installation, in MB on disk.

For every extra: a fresh virtual environment gets torch (the CPU build, so that anything
depending on it finds it and it is counted in neither side) and edgembed itself; then
`pip install 'edgembed[EXTRA]'`. The difference in installed bytes, summed from each
distribution's RECORD, is what the extra adds; the distributions it brought are listed,
largest first.

    python benchmarks/extra_sizes.py --out benchmarks/results/extra_sizes.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXTRAS = ("serve", "docs", "watch", "langchain", "llamaindex", "mteb", "ray", "lancedb",
          "openvino")
TORCH = "torch==2.13.0"
# the distributions of a venv and their installed bytes, from their RECORD files
SIZES = """
import json, os
from importlib import metadata
sizes = {}
for dist in metadata.distributions():
    total = 0
    for file in dist.files or ():
        path = dist.locate_file(file)
        if os.path.isfile(path):
            total += os.path.getsize(path)
    sizes[f"{dist.metadata['Name']}=={dist.version}"] = total
print(json.dumps(sizes))
"""


def pip(venv: Path, *args: str) -> None:
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *args],
                   check=True)


def installed(venv: Path) -> dict[str, int]:
    out = subprocess.run([str(venv / "bin" / "python"), "-c", SIZES], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def measure(extra: str, workdir: Path) -> dict:
    venv = workdir / extra
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip(venv, TORCH)
    pip(venv, "-e", str(ROOT))
    before = installed(venv)
    started = time.monotonic()
    pip(venv, "-e", f"{ROOT}[{extra}]")
    after = installed(venv)
    added = {name: size for name, size in after.items() if name not in before}
    changed = {name for name in before if name not in after}
    mb = (sum(after.values()) - sum(before.values())) / 1e6
    return {"extra": extra, "added_mb": round(mb, 1), "install_s": round(
        time.monotonic() - started, 1), "replaced": sorted(changed),
        "distributions": {name: round(size / 1e6, 2) for name, size in
                          sorted(added.items(), key=lambda item: -item[1])}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    parser.add_argument("--extras", nargs="+", default=list(EXTRAS))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="edgembed-extras-") as tmp:
        results = [measure(extra, Path(tmp)) for extra in args.extras]
    report = {"command": "python benchmarks/extra_sizes.py " + " ".join(sys.argv[1:]),
              "python": sys.version.split()[0], "base": f"edgembed + {TORCH} (CPU)",
              "extras": results}
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    for row in results:
        print(f"{row['extra']:>11}: +{row['added_mb']} MB "
              f"({len(row['distributions'])} distributions)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
