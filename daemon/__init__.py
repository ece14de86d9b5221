"""The composition root: CLI, supervisor, control socket, systemd notify, signals. Nothing imports it."""
