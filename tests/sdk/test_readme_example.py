"""The README's front-door example, run as a user would: the `export` lines the server printed
at its first start, the README's second `export` line, then the README's Python block, pasted
into a shell. It must print the unwrapped key and exit 0."""

import re
import subprocess
import sys

from conftest import REPO


def readme_section(text: str) -> str:
    start = text.index("## The Azure-compatible HTTPS front door")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def test_the_readme_python_example_works_when_pasted(server):
    section = readme_section((REPO / "README.md").read_text())
    python = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    sh = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    readme_exports = [line for line in sh.splitlines() if line.startswith("export ")]
    assert readme_exports, "the README shows the export line for the proxy"
    printed = [line for line in server.stdout.read_text().splitlines()
               if line.startswith("export ")]
    assert any(line.startswith("export AZURE_CLIENT_SECRET=") for line in printed), printed
    script = "\n".join(printed + readme_exports + [f'exec "{sys.executable}" -c "$EXAMPLE"'])
    done = subprocess.run(["bash", "-c", script], env={"EXAMPLE": python, "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=120, cwd=str(REPO))
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert done.stdout.strip() == repr(b"k" * 32), done.stdout
