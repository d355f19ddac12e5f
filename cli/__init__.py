"""`bench`, the command line: the top of the stack and the only package that imports every other (the core, the
baselines, methods and datasets through the registry, and the leaderboard). `cli.app` holds the application and
what commands share; `cli.main` the core commands; `cli.contrib`, `cli.convert` and `cli.sweep` the rest."""
