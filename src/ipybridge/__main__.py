"""``ipybridge demo``: open the example notebooks in JupyterLab."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path


def _examples_source() -> Path:
    packaged = Path(__file__).parent / "examples"
    if packaged.is_dir():
        return packaged
    checkout = Path(__file__).resolve().parents[2] / "examples"  # running from a source checkout
    if checkout.is_dir():
        return checkout
    raise SystemExit("ipybridge: the example notebooks are not installed with this copy of ipybridge")


def demo(target: Path, extra: list[str]) -> int:
    source = _examples_source()
    target.mkdir(parents=True, exist_ok=True)
    for notebook in sorted(source.glob("*.ipynb")):
        destination = target / notebook.name
        if not destination.exists():  # never overwrite the user's edits
            shutil.copy2(notebook, destination)
    print(f"ipybridge: opening the examples in {target}")
    return subprocess.call([sys.executable, "-m", "jupyter", "lab", f"--ServerApp.root_dir={target}", *extra])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ipybridge", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo_parser = commands.add_parser("demo", help="copy the example notebooks to DIR and open them in JupyterLab")
    demo_parser.add_argument("dir", nargs="?", type=Path, default=Path.cwd() / "ipybridge-examples")
    args, extra = parser.parse_known_args(argv)
    return demo(args.dir, extra)


if __name__ == "__main__":
    raise SystemExit(main())
