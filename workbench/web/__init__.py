"""The web process: the steps' HTTP API, the workbench pages, its JSON API and live streams."""
