# bash completion for dagrun: commands, options, DAG ids and run ids
# (installed as PREFIX/share/bash-completion/completions/dagrun).
_dagrun_ids() {
    # $1: dags or runs; the -c CONFIG of the command line is kept.
    local cfg=() i
    for ((i = 1; i < COMP_CWORD; i++)); do
        case ${COMP_WORDS[i]} in -c|--config) cfg=(-c "${COMP_WORDS[i+1]}") ;; esac
    done
    if [ "$1" = dags ]; then
        dagrun "${cfg[@]}" list 2>/dev/null | awk 'NR > 1 { print $1 }'
    else
        dagrun "${cfg[@]}" runs --wide --limit 50 2>/dev/null | awk 'NR > 1 { print $1 }'
    fi
}

_dagrun() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    local cmds="validate list show plugins next initdb run test scheduler runs status resume
                cancel pause unpause logs"
    local cmd="" i
    for ((i = 1; i < COMP_CWORD; i++)); do
        case ${COMP_WORDS[i]} in
            -c|--config|--log-format|--log-level) ((i++)) ;;
            -*) ;;
            *) cmd=${COMP_WORDS[i]}; break ;;
        esac
    done
    case $prev in
        -c|--config|--conf-file|--junit|--schema) COMPREPLY=($(compgen -f -- "$cur")); return ;;
        --log-format) COMPREPLY=($(compgen -W "auto text json" -- "$cur")); return ;;
        --log-level) COMPREPLY=($(compgen -W "debug info warning error" -- "$cur")); return ;;
        --state)
            COMPREPLY=($(compgen -W "queued running success partial failed cancelled skipped
                                     upstream_failed pending" -- "$cur")); return ;;
    esac
    if [ -z "$cmd" ]; then
        COMPREPLY=($(compgen -W "$cmds -c --config --log-format --log-level --help --version" \
                     -- "$cur"))
        return
    fi
    local opts=""
    case $cmd in
        run) opts="--conf --conf-file --logical-date" ;;
        test) opts="--conf --conf-file --junit" ;;
        show) opts="--dot --conf --conf-file" ;;
        next) opts="--cron --tz --from -n" ;;
        runs) opts="--state --limit --wide --json" ;;
        status) opts="--state --json" ;;
        logs) opts="--follow" ;;
        scheduler) opts="--once" ;;
        initdb) opts="--schema" ;;
        list) opts="--wide" ;;
    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$opts --help" -- "$cur"))
        return
    fi
    case $cmd in
        run|test|show|pause|unpause|next|runs)
            [ "$prev" = "$cmd" ] && COMPREPLY=($(compgen -W "$(_dagrun_ids dags)" -- "$cur")) ;;
        status|resume|cancel|logs)
            [ "$prev" = "$cmd" ] && COMPREPLY=($(compgen -W "$(_dagrun_ids runs)" -- "$cur")) ;;
        validate) COMPREPLY=($(compgen -f -- "$cur")) ;;
    esac
}
complete -F _dagrun dagrun
