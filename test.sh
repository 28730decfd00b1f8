#!/bin/sh
# test.sh — caption a folder with a trained model and write image_<NAME>.json for compare.sh.
#
#   sh test.sh                                    # uses the constants below
#   MODEL_PATH=./checkpoints/merged NAME=ft1 sh test.sh   # or override any of them from the environment
#
# MODEL_PATH is a merged checkpoint (merge_lora_weights.py) or any image-text-to-text model folder; with ADAPTER_PATH
# set, MODEL_PATH is the BASE model and the LoRA adapter (+ projector) from train.py is applied on top.
# INPUT_DIR holds multi-view object folders (<UUID>_<n>_..._shaded/{front,...}.jpg: one caption per object) or images
# directly (one caption per image). The output $OUTPUT_DIR/image_$NAME.json goes straight into compare.sh's table.
# Exit status: 0 all captioned, 1 some items failed (see $OUTPUT_DIR/${NAME}_caption_generation_report.json).
set -eu

# ---- edit these --------------------------------------------------------------------------------------------------
MODEL_PATH="${MODEL_PATH:-./checkpoints/llava-qwen2.5-merged}"
ADAPTER_PATH="${ADAPTER_PATH:-}"          # optional LoRA adapter folder; empty = MODEL_PATH is used as it is
INPUT_DIR="${INPUT_DIR:-./data/multiview_images}"
OUTPUT_DIR="${OUTPUT_DIR:-./data/captions}"
NAME="${NAME:-my-finetune}"               # output image_$NAME.json, and each record's data_by
BATCH_SIZE="${BATCH_SIZE:-8}"
MAX_NEW_TOKENS="${MAX_NEW_TOKENS:-128}"
DEVICE="${DEVICE:-auto}"                  # auto, cpu, cuda, cuda:1, ...
PROMPT_FILE="${PROMPT_FILE:-}"            # optional prompt template (default: the vase caption prompt)
RESUME="${RESUME:-0}"                     # 1 = continue an interrupted run; 0 = replace an existing image_$NAME.json
PYTHON="${PYTHON:-python}"
# ------------------------------------------------------------------------------------------------------------------

HERE="$(cd "$(dirname "$0")" && pwd)"
set -- --model_path "$MODEL_PATH" --input_dir "$INPUT_DIR" --output_dir "$OUTPUT_DIR" \
    --output_name "image_${NAME}.json" --data_by "$NAME" \
    --batch_size "$BATCH_SIZE" --max_new_tokens "$MAX_NEW_TOKENS" --device "$DEVICE"
if [ -n "$ADAPTER_PATH" ]; then set -- "$@" --adapter_path "$ADAPTER_PATH"; fi
if [ -n "$PROMPT_FILE" ]; then set -- "$@" --prompt_file "$PROMPT_FILE"; fi
if [ "$RESUME" = "1" ]; then set -- "$@" --resume; else set -- "$@" --overwrite; fi

echo "test.sh: $NAME <- $MODEL_PATH${ADAPTER_PATH:+ + adapter $ADAPTER_PATH} on $INPUT_DIR"
exec "$PYTHON" "$HERE/caption.py" "$@"
