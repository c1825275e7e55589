"""The Textual workstation: presents the core's state and sends its commands; it computes no trading logic.

Entry points: `OmegaApp(client, settings)` in `omega_tui.ui.app`, over an `EngineClient`: the product's is
`omega_tui.attach.SpawnedEngine` (the engine in its own child process, `launcher.run_workstation`) or
`RemoteEngine` (`omega-tui attach`); `LocalEngine(runtime)` in `omega_tui.ui.client` runs an engine in this
process, for the deterministic snapshot and pilot tests. Nothing under `omega_tui.core` may import this package.
"""
