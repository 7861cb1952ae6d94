
set edit:completion:arg-completer[monkctl] = { |@words|
    var index = (count $words)
    set index = (- $index 1)

    put (env _CLAP_IFS="\n" _CLAP_COMPLETE_INDEX=(to-string $index) MONKCTL_COMPLETE="elvish" monkctl -- $@words) | to-lines
}

