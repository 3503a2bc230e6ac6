"""One module per ``futhark-lab`` subcommand (asv's layout): each has ``add(subparsers)`` and ``main(args)``."""

COMMANDS = ("run", "demo", "generate", "report", "compare", "bench", "tune", "importing", "doctor")
