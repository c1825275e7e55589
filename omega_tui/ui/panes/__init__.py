"""One module per pane; each pane reads its sections from the `EngineClient` when the app's timer asks."""
