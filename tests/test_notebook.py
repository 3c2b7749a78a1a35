"""The notebooks (the API walk-through and the lesson plan) run top to bottom, headless, in a kernel on this interpreter."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

from jupyter_client.kernelspec import KernelSpecManager  # noqa: E402  (installed with nbclient)
from jupyter_client.manager import KernelManager  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "explore.ipynb"
LESSON = ROOT / "notebooks" / "lesson_tradeoffs.ipynb"


@pytest.mark.parametrize("path", [NOTEBOOK, LESSON], ids=lambda p: p.stem)
def test_notebook_is_clean(path):
    """Committed without outputs, so the repository stays small and diffs stay readable."""
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.execution_count is None and not cell.outputs, "save the notebook without outputs"


def run_notebook(path: Path, tmp_path: Path):
    """Execute the notebook at ``path`` (cwd: its folder) in a kernel on this interpreter; returns its code cells,
    executed, after checking that the kernel was this interpreter."""
    nb = nbformat.read(path, as_version=4)
    n_cells = len(nb.cells)
    nb.cells.append(nbformat.v4.new_code_cell("import sys; print('KERNEL-PYTHON', sys.executable)"))
    # A private "python3" kernelspec that runs *this* interpreter (the project's .venv wherever
    # it lives), so no user- or system-wide kernelspec on the machine can pick another Python.
    spec_dir = tmp_path / "kernels" / "python3"
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (project venv)",
        "language": "python",
    }))
    km = KernelManager(kernel_name="python3", kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(spec_dir.parent)]))
    env = dict(os.environ)  # PYTHONPATH is left alone: the first cell must find the project itself
    env["MPLBACKEND"] = "Agg"
    env["OFA_EXPLORER_HOME"] = str(tmp_path / "home")  # no user hardware tables leak in
    client = nbclient.NotebookClient(
        nb,
        km=km,
        kernel_name="python3",
        timeout=300,
        resources={"metadata": {"path": str(path.parent)}},  # cwd notebooks/
        allow_errors=False,
    )
    try:
        client.execute(env=env)
    except nbclient.exceptions.CellExecutionError as exc:  # report which cell, with its traceback
        pytest.fail(f"notebook cell failed:\n{exc}", pytrace=False)

    probe = nb.cells.pop()
    assert f"KERNEL-PYTHON {sys.executable}" in probe.outputs[0]["text"], probe.outputs
    assert len(nb.cells) == n_cells
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code)
    return code


def outputs_text(code) -> str:
    return "".join(o.get("text", "") for c in code for o in c.outputs if o.output_type == "stream")


def widget_outputs(code) -> list:
    return [o for c in code for o in c.outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]


def test_notebook_executes(tmp_path):
    code = run_notebook(NOTEBOOK, tmp_path)
    text = outputs_text(code)
    assert "sha256" in text and "best config" in text
    images = [o for c in code for o in c.outputs if o.output_type in ("display_data", "execute_result") and "image/png" in o.get("data", {})]
    assert images, "the Pareto plot should be displayed inline"
    # the interactive section: the explorer, the composed controls + tiles and a standalone chart are widgets
    assert len(widget_outputs(code)) == 3
    assert "from a link  : True r" in text and "on gpu-v100-b1" in text and "bad config   : False -> config string:" in text


def test_lesson_executes_and_its_answers_hold(tmp_path):
    """The lesson's answer cells assert what its answer texts say, computed with the library."""
    code = run_notebook(LESSON, tmp_path)
    text = outputs_text(code)
    assert "fastest with >= 90% on the Note10" in text and "OFA is cheaper than ProxylessNAS from N = 3" in text
    assert "Answers checked against the library: http://localhost:8501/explore?cfg=" in text
    assert len(widget_outputs(code)) == 1  # the explorer
