# Sourced by the shell launchers (train.sh, test.sh, compare.sh, ...) so that they all behave alike.
#
# A launcher is: a header comment (what it runs, examples), a settings block between the lines
# "# ---- settings" and "# ---- end of settings" (NAME="${NAME:-default}": edit it, or set NAME in the environment;
# a setting that mirrors a flag has the script's own default), then
#     . "$HERE/vlmkit/launcher.sh"; launcher_start "$0" "$HERE/script.py" "$@"
# and the call, with the launcher's extra arguments passed to the script unchanged and last, so they win.
# POSIX sh: every launcher runs with `sh launcher.sh` (dash) and `bash launcher.sh` alike: no arrays, no pipefail.

# launcher_python: PYTHON from the environment, else python3, else python.
launcher_python() {
    if [ -n "${PYTHON:-}" ]; then return 0; fi
    if command -v python3 >/dev/null 2>&1; then PYTHON=python3
    elif command -v python >/dev/null 2>&1; then PYTHON=python
    else echo "error: neither python3 nor python is on PATH (set PYTHON=...)" >&2; exit 2
    fi
}

# launcher_help LAUNCHER SCRIPT: the launcher's header, its settings, then the script's own --help.
launcher_help() {
    awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$1"
    echo
    echo "settings (edit them at the top of $(basename "$1"), or set them in the environment):"
    awk '/^# ---- settings/ { on = 1; next } /^# ---- end of settings/ { exit } on { print "  " $0 }' "$1"
    echo
    echo "$(basename "$2") flags (extra arguments are passed to it unchanged; they override the settings):"
    "$PYTHON" "$2" --help
}

# launcher_start LAUNCHER SCRIPT ARGS...: pick the interpreter; -h/--help anywhere prints help and exits 0.
launcher_start() {
    _launcher=$1; _script=$2; shift 2
    launcher_python
    for _arg in "$@"; do
        case "$_arg" in -h|--help) launcher_help "$_launcher" "$_script"; exit 0 ;; esac
    done
}

# launcher_gpus: the number of GPUs this machine's torch sees (CUDA_VISIBLE_DEVICES honoured); 0 without a GPU driver
# (then torch is not even imported) or when the interpreter cannot tell.
launcher_gpus() {
    if ! command -v nvidia-smi >/dev/null 2>&1 && [ ! -e /dev/nvidia0 ] && [ ! -e /dev/kfd ]; then echo 0; return 0; fi
    _gpus=$("$PYTHON" -c 'import torch; print(torch.cuda.device_count())' 2>/dev/null | tail -n 1) || _gpus=0
    case "$_gpus" in ''|*[!0-9]*) _gpus=0 ;; esac
    echo "$_gpus"
}
