"""The `keras-kd` command line: one entry point, a module per subcommand."""
