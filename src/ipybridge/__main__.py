"""ipybridge demo [DIR]: copy the example notebooks to DIR and open them in JupyterLab."""

from __future__ import annotations

import argparse
import importlib.util
import os
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


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def jupyter_command(target: Path, extra: list[str], *, root: bool) -> list[str]:
    """The ``jupyter lab`` command line that serves ``target``, with the user's ``extra`` arguments.

    As root (containers, cloud VMs) Jupyter refuses to start unless told ``--allow-root``;
    the demo says it for the user, who evidently means to run it.
    """
    command = [sys.executable, "-m", "jupyter", "lab", f"--ServerApp.root_dir={target}"]
    if root and not any(arg.startswith(("--allow-root", "--ServerApp.allow_root")) for arg in extra):
        command.append("--allow-root")
    if importlib.util.find_spec("nbclassic") is not None and not any("nbclassic" in arg for arg in extra):
        # The demo opens JupyterLab; the classic notebook's server extension (installed with the test
        # tools, to compare the legacy API against) prints a migration banner on every start.
        command.append("--ServerApp.jpserver_extensions=nbclassic=False")
    return [*command, *extra]


def demo(target: Path, extra: list[str]) -> int:
    source = _examples_source()
    target = target.resolve()
    target.mkdir(parents=True, exist_ok=True)
    for notebook in sorted(source.glob("*.ipynb")):
        destination = target / notebook.name
        if not destination.exists():  # never overwrite the user's edits
            shutil.copy2(notebook, destination)
    print(f"ipybridge: opening the examples in {target}", flush=True)
    command = jupyter_command(target, extra, root=_is_root())
    if os.name == "posix":  # become the server: Ctrl-C and kill reach it, no process is left behind
        sys.stdout.flush()
        os.execv(sys.executable, command)  # noqa: S606 - our own argument list, as for subprocess
    return subprocess.call(command)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ipybridge",
        description="ipybridge's command line. Arguments after DIR go to jupyter lab (e.g. --no-browser --port=9999).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo_parser = commands.add_parser(
        "demo", help="copy the example notebooks to DIR (default ./ipybridge-examples) and open them in JupyterLab"
    )
    default_dir = Path.cwd() / "ipybridge-examples"
    demo_parser.add_argument(
        "dir", nargs="?", type=Path, default=default_dir, help="where the copies go (kept if present)"
    )
    args, extra = parser.parse_known_args(argv)
    return demo(args.dir, extra)


if __name__ == "__main__":
    raise SystemExit(main())
