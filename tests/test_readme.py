"""The README's set-up commands are the ones CI runs."""

from __future__ import annotations

import re

from .conftest import ROOT


def _block(marker: str) -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(rf"<!-- {marker} -->\s*```bash\n(.*?)\n```", text, re.S)
    assert match, f"README has no '<!-- {marker} -->' command block"
    return match.group(1).strip()


def test_ci_runs_the_readme_install_and_test_commands_in_order() -> None:
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    install, test = _block("install"), _block("test")
    assert install in ci and test in ci
    assert ci.index(install) < ci.index(test)


def test_the_test_command_is_followed_by_its_cost_and_the_quick_loop() -> None:
    text = (ROOT / "README.md").read_text()
    after = text.split("<!-- test -->", 1)[1].split("\n## ", 1)[0]
    assert re.search(r"about \d+ minutes and \d+ GB of memory on 2 cores", after)
    assert '. .venv/bin/activate && python -m pytest -m "not slow"' in after
