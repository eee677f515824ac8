from __future__ import annotations

from rich.console import Console

err_console = Console(stderr=True, soft_wrap=True)
out_console = Console(soft_wrap=True)
