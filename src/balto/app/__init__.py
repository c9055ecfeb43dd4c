"""Application layer: settings, the composition root, the session service, the web app and the CLI."""
