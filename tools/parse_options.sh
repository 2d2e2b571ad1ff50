#!/usr/bin/env bash
# Kaldi-style command-line option parsing for recipe scripts (run.sh).
#
# Source it after the defaults, one shell variable per option:
#
#   stage=0        # first stage to run
#   stop_stage=5   # last stage to run
#   use_gpu=true   # booleans must stay true|false
#   help_message="Usage: $0 [options] ..."   # optional; printed by --help
#   . tools/parse_options.sh || exit 1
#
# Behaviour:
#   --name value   sets the shell variable `name` (dashes become underscores: --stop-stage 3
#                  sets stop_stage). The variable must already be defined, otherwise the option
#                  is unknown and the script exits with an error. A variable whose default is
#                  true or false only accepts true or false.
#   --config file  sources `file` (shell assignments of defaults) before the other options are
#                  applied, whatever its position; options given on the command line win.
#                  Exception: a script that defines its own variable `config` (slamasr recipes:
#                  the experiment YAML) gets --config as an ordinary option.
#   --help, -h     prints $help_message (or, without one, the calling script's leading comment
#                  block) and exits 0.
#   --name=value   is rejected (use --name value).
# Parsing stops at the first argument that does not start with --; the remaining arguments are
# left in "$@" for the caller.

_po_die() {
  echo "$0: $*" >&2
  exit 1
}

_po_help() {
  if [ -n "${help_message:-}" ]; then
    echo "$help_message"
  else
    # The caller's leading comment block (after the shebang).
    sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$0"
  fi
  exit 0
}

# 1. --config files are sourced first, so that command-line options override them.
_po_src=--config
[[ -v config ]] && _po_src=--no-shell-config-file  # the caller's own `config` option
_po_args=("$@")
for ((_po_i = 0; _po_i < ${#_po_args[@]}; _po_i++)); do
  case "${_po_args[$_po_i]}" in
    "$_po_src")
      _po_file="${_po_args[$((_po_i + 1))]:-}"
      [ -n "$_po_file" ] || _po_die "option --config needs a file"
      [ -f "$_po_file" ] || _po_die "config file '$_po_file' not found"
      # shellcheck disable=SC1090
      . "$_po_file" || _po_die "failed to source config file '$_po_file'"
      _po_i=$((_po_i + 1))
      ;;
    --*) _po_i=$((_po_i + 1)) ;;
    *) break ;;
  esac
done

# 2. Every --name value pair sets an already-defined variable.
while [ $# -gt 0 ]; do
  case "$1" in
    --help | -h) _po_help ;;
    --*=*) _po_die "options must be given as '--name value', got '$1'" ;;
    "$_po_src") shift 2 || _po_die "option --config needs a file" ;;
    --*)
      _po_name="${1#--}"
      _po_name="${_po_name//-/_}"
      [[ "$_po_name" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || _po_die "invalid option name '$1'"
      [[ -v "$_po_name" ]] || _po_die "unknown option '$1' (no variable '$_po_name' in $0)"
      [ $# -ge 2 ] || _po_die "option '$1' needs a value"
      _po_old="${!_po_name}"
      if [ "$_po_old" = true ] || [ "$_po_old" = false ]; then
        [ "$2" = true ] || [ "$2" = false ] ||
          _po_die "option '$1' takes true or false, got '$2'"
      fi
      printf -v "$_po_name" '%s' "$2"
      shift 2
      ;;
    *) break ;;
  esac
done

unset -f _po_die _po_help
unset _po_args _po_i _po_file _po_name _po_old _po_src
true
