#!/bin/sh
# test.sh: caption a folder with a trained model and write image_<NAME>.json for compare.sh (runs caption.py).
#
#   sh test.sh                                           # the settings below
#   MODEL_PATH=./checkpoints/merged NAME=ft1 sh test.sh  # any setting from the environment
#   sh test.sh --batch_size 2 --temperature 0.7          # extra flags go to caption.py unchanged
#
# MODEL_PATH is a merged checkpoint (merge_lora_weights.py) or any image-text-to-text model folder; with ADAPTER_PATH
# set, MODEL_PATH is the BASE model and the LoRA adapter (+ projector) from train.py is applied on top.
# INPUT_DIR holds multi-view object folders (<UUID>_<n>_..._shaded/{front,...}.jpg: one caption per object) or images
# (one caption per image). $OUTPUT_DIR/image_$NAME.json goes straight into compare.sh's table.
# Exit status: 0 all captioned, 1 some items failed (see $OUTPUT_DIR/${NAME}_caption_generation_report.json), 2 bad
# input, 130 interrupted.
set -eu

# ---- settings
MODEL_PATH="${MODEL_PATH:-./outputs/llava-finetune-merged}"   # train.sh's output (its OUTPUT_DIR + -merged)
ADAPTER_PATH="${ADAPTER_PATH:-}"          # optional LoRA adapter folder; empty = MODEL_PATH is used as it is
INPUT_DIR="${INPUT_DIR:-./data/multiview_images}"
OUTPUT_DIR="${OUTPUT_DIR:-./data/captions}"
NAME="${NAME:-my-finetune}"               # output image_$NAME.json, and each record's data_by
BATCH_SIZE="${BATCH_SIZE:-8}"
MAX_NEW_TOKENS="${MAX_NEW_TOKENS:-256}"
DEVICE="${DEVICE:-auto}"                  # auto, cpu, cuda, cuda:1, ...
PROMPT_FILE="${PROMPT_FILE:-}"            # optional prompt template (empty: the vase caption prompt)
RESUME="${RESUME:-0}"                     # 1 = continue an interrupted run; 0 = replace an existing image_$NAME.json
PYTHON="${PYTHON:-}"                      # empty: python3, else python
# ---- end of settings

HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/vlmkit/launcher.sh"
launcher_start "$0" "$HERE/caption.py" "$@"

# The settings' flags first, the user's extra arguments last (argparse keeps the last value of a flag).
MODE=$([ "$RESUME" = "1" ] && echo --resume || echo --overwrite)
for arg in "$@"; do case "$arg" in --resume|--overwrite) MODE= ;; esac; done  # an explicit flag wins over RESUME
set -- --model_path "$MODEL_PATH" --input_dir "$INPUT_DIR" --output_dir "$OUTPUT_DIR" \
    --output_name "image_${NAME}.json" --data_by "$NAME" \
    --batch_size "$BATCH_SIZE" --max_new_tokens "$MAX_NEW_TOKENS" --device "$DEVICE" \
    ${ADAPTER_PATH:+--adapter_path "$ADAPTER_PATH"} ${PROMPT_FILE:+--prompt_file "$PROMPT_FILE"} \
    $MODE "$@"

echo "test.sh: $NAME <- $MODEL_PATH${ADAPTER_PATH:+ + adapter $ADAPTER_PATH} on $INPUT_DIR"
exec "$PYTHON" "$HERE/caption.py" "$@"
