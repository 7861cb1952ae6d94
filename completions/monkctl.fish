complete --keep-order --exclusive --command monkctl --arguments "(MONKCTL_COMPLETE=fish monkctl -- (commandline --current-process --tokenize --cut-at-cursor) (commandline --current-token))"
