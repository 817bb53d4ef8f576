"""The package stays readable by file: no module over 300 lines."""

from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "viewkit"


def test_no_module_over_300_lines():
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 300}
    assert not long, long
