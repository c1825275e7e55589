"""The core runtime and the headless runner never load Textual or Rich (DESIGN §4, STYLE)."""

from __future__ import annotations

import subprocess
import sys


def test_core_and_headless_import_without_textual_or_rich() -> None:
    code = (
        "import pkgutil, importlib, sys\n"
        "import omega_tui.core as core\n"
        "for m in pkgutil.walk_packages(core.__path__, 'omega_tui.core.'):\n"
        "    importlib.import_module(m.name)\n"
        "import omega_tui.headless, omega_tui.config, omega_tui.cli\n"
        "bad = sorted(n for n in sys.modules if n.split('.')[0] in ('textual', 'rich'))\n"
        "print(','.join(bad))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "", f"core/headless loaded: {proc.stdout.strip()}"


def test_core_never_imports_ui_or_sim() -> None:
    code = (
        "import pkgutil, importlib, sys\n"
        "import omega_tui.core as core\n"
        "for m in pkgutil.walk_packages(core.__path__, 'omega_tui.core.'):\n"
        "    importlib.import_module(m.name)\n"
        "print(','.join(sorted(n for n in sys.modules if n.startswith(('omega_tui.ui', 'omega_tui.sim')))))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""
