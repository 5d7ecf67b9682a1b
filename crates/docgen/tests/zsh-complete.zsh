#!/usr/bin/env zsh
# Usage: zsh-complete.zsh FPATH_DIR 'command line'
# Types the command line into a real interactive zsh (on a pseudo-terminal, through
# zsh/zpty) with compinit loaded from FPATH_DIR, presses TAB twice, and prints what the
# completion system showed, between two markers. Nothing is faked: this is the same
# code path as a human pressing TAB.
emulate -L zsh
zmodload zsh/zpty || { print -u2 "zsh/zpty is not available"; exit 3 }
zpty z 'zsh -f -i'
zpty -w z "fpath=(${(q)1} \$fpath); autoload -U compinit; compinit -u -D"
zpty -w z "PS1='%% '; LISTMAX=100000; COLUMNS=400; zstyle ':completion:*' menu no"
zpty -w z 'print HAKIT-START'
zpty -r z _ '*HAKIT-START*HAKIT-START*'
zpty -n -w z "$2"$'\t\t'
# ZLE does not draw a completion list while more input is waiting (typeahead): give it the
# time to draw before the next keys arrive (under load it once lost that race).
sleep 0.5
zpty -w z $'\C-u print HAKIT-''END'
zpty -r z out '*HAKIT-END*HAKIT-END*' || { print -u2 "no answer from zsh"; exit 4 }
zpty -d z
print -r -- "$out"
