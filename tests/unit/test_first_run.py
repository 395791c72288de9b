"""What a new user meets first: missing extras, the command line, the example notebooks."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ipybridge.__main__ import jupyter_command, main

REPO = Path(__file__).resolve().parents[2]


def run_without(modules: tuple[str, ...], code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter in which importing any of ``modules`` fails, as when not installed."""
    blocker = textwrap.dedent(
        f"""
        import sys
        for name in {modules!r}:
            sys.modules[name] = None  # `import name` now raises ModuleNotFoundError
        """
    )
    return subprocess.run(
        [sys.executable, "-c", blocker + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_player_of_a_figure_without_matplotlib_names_the_extra() -> None:
    result = run_without(
        ("matplotlib", "PIL"),
        """
        import ipybridge
        fig = object()
        def update(i):
            pass
        ipybridge.Player(fig, update, frames=10)
        """,
    )
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ModuleNotFoundError: Player(fig, func, frames=...) and Player(anim) need")
    assert 'matplotlib, which is not installed: pip install "ipybridge[player]"' in last


def test_video_player_without_pillow_keeps_its_saved_notebook_png_and_jpeg_names_the_extra() -> None:
    result = run_without(
        ("matplotlib", "PIL"),
        """
        import base64, json
        import numpy as np
        import ipybridge
        video = np.zeros((5, 16, 24, 3), np.uint8)
        video[:, 4:8, 2:9] = (255, 0, 0)
        data, _ = ipybridge.Player(video)._repr_mimebundle_()
        png = base64.b64decode(data["image/png"])
        try:
            ipybridge.Player(video, codec="jpeg")
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
        print(json.dumps({"png": png[:8].hex(), "size": len(png), "error": error}))
        """,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["png"] == b"\x89PNG\r\n\x1a\n".hex()
    assert (
        out["error"] == 'TraitError: codec="jpeg" needs Pillow, which is not installed: pip install "ipybridge[player]"'
    )


def test_saved_notebook_png_is_the_frame() -> None:
    """The fallback PNG (written without Pillow) decodes, with Pillow, to the frame itself."""
    import io

    import numpy as np
    from PIL import Image

    from ipybridge.player import codecs

    rgba = np.random.default_rng(3).integers(0, 256, (7, 9, 4), dtype=np.uint8)
    with Image.open(io.BytesIO(codecs.png_bytes(rgba))) as image:
        assert np.array_equal(np.asarray(image.convert("RGBA")), rgba)


def test_jpeg_encode_without_pillow_names_the_extra() -> None:
    result = run_without(
        ("PIL",),
        """
        import numpy as np
        from ipybridge.player import codecs
        codecs.encode(np.zeros((4, 4, 4), np.uint8), "jpeg")
        """,
    )
    assert result.stderr.strip().splitlines()[-1] == (
        'ModuleNotFoundError: codec="jpeg" needs Pillow, which is not installed: pip install "ipybridge[player]"'
    )


def test_help_is_plain_text(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "demo" in text
    assert "``" not in text
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    assert "``" not in capsys.readouterr().out


@pytest.mark.parametrize("root", [True, False])
def test_demo_allows_root_only_as_root(root: bool, tmp_path: Path) -> None:
    command = jupyter_command(tmp_path, ["--no-browser"], root=root)
    assert command[:4] == [sys.executable, "-m", "jupyter", "lab"]
    assert f"--ServerApp.root_dir={tmp_path}" in command
    assert ("--allow-root" in command) is root
    assert command[-1] == "--no-browser"
    # Said once, even when the user says it too.
    assert jupyter_command(tmp_path, ["--allow-root"], root=True).count("--allow-root") == 1


def _globals_read_by_functions(tree: ast.Module) -> set[str]:
    """Module-level names that the functions defined in ``tree`` read (their free variables, roughly)."""
    read: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            arguments = node.args
            local = {a.arg for a in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]}
            local |= {a.arg for a in (arguments.vararg, arguments.kwarg) if a}
            body = node.body if isinstance(node.body, list) else [node.body]
            names = [n for stmt in body for n in ast.walk(stmt) if isinstance(n, ast.Name)]
            local |= {n.id for n in names if isinstance(n.ctx, ast.Store)}
            read |= {n.id for n in names if isinstance(n.ctx, ast.Load)} - local
    return read


def _bound_at_top(tree: ast.Module) -> set[str]:
    bound: set[str] = set()
    for stmt in tree.body:
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.add(stmt.name)
        elif isinstance(stmt, ast.Import | ast.ImportFrom):
            bound |= {(a.asname or a.name).split(".")[0] for a in stmt.names}
        else:
            for node in ast.walk(stmt):
                if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                    bound.add(node.id)
    return bound


@pytest.mark.parametrize("notebook", sorted(p.name for p in (REPO / "examples").glob("*.ipynb")))
def test_examples_never_rebind_what_an_earlier_cells_function_reads(notebook: str) -> None:
    """Frames (and answers) are computed from the current state: after Run All, a function defined in
    one cell must still see the names it was written against, not a later cell's."""
    cells = json.loads((REPO / "examples" / notebook).read_text())["cells"]
    sources = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    sources = [s for s in sources if not s.lstrip().startswith("%%")]  # a cell magic's body is not Python
    trees = [
        ast.parse("\n".join(line for line in s.splitlines() if not line.lstrip().startswith(("%", "!"))))
        for s in sources
    ]
    problems = []
    for i, tree in enumerate(trees):
        reads = _globals_read_by_functions(tree)
        for j in range(i + 1, len(trees)):
            rebound = reads & _bound_at_top(trees[j])
            if rebound:
                problems.append(f"cell {j} rebinds {sorted(rebound)}, read by a function of cell {i}")
    assert not problems, problems


def _readme_block(heading: str) -> str:
    text = (REPO / "README.md").read_text()
    section = text[text.index(f"\n## {heading}\n") :]
    start = section.index("```python\n") + len("```python\n")
    return section[start : section.index("\n```", start)]


@pytest.mark.parametrize(("heading", "widget"), [("Player", "Player"), ("Ten lines", "Bridge")])
def test_readme_examples_run_as_written(heading: str, widget: str) -> None:
    """README's short examples are complete programs: pasted into a cell, they make their widget."""
    code = _readme_block(heading)
    assert len(code.strip().splitlines()) <= 14
    *body, last = code.strip().splitlines()
    script = "\n".join([*body, f"result = ({last})", "print(type(result).__name__)"])
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "MPLBACKEND": "Agg"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == widget
