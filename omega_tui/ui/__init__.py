"""The Textual workstation: presents the core's state and sends its commands; it computes no trading logic.

Entry points: `OmegaApp(client, settings)` in `omega_tui.ui.app` and `LocalEngine(runtime)` in
`omega_tui.ui.client`. Nothing under `omega_tui.core` may import this package.
"""
