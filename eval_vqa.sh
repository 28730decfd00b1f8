#!/bin/sh
# eval_vqa.sh: benchmark a model on TextVQA, MMBench or a VQA set with one eval_vqa.py process per GPU (each answers
# one chunk of the questions), then merge the chunks and score them (runs eval_vqa.py).
#
#   sh eval_vqa.sh                                                  # the settings below
#   GPU_LIST=0,1,2,3 ADAPTER_PATH=./outputs/qwen2_5_vl-finetune NAME=lora sh eval_vqa.sh
#   TASK=mmbench TSV=./data/mmbench/mmbench_dev_en.tsv NAME=base sh eval_vqa.sh --limit 200
#   sh eval_vqa.sh --batch_size 16                                  # extra flags go to eval_vqa.py unchanged
#
# MODEL_PATH is the base model, a merged checkpoint (merge_lora_weights.py) or any image-text-to-text model; with
# ADAPTER_PATH set, MODEL_PATH is the BASE and the LoRA adapter from train.py is applied on top. Chunk i runs on GPU
# i of GPU_LIST (CUDA_VISIBLE_DEVICES) in the background, its log in $OUTPUT_DIR/logs/; when all are done the chunks
# are merged into $OUTPUT_DIR/results.json. Compare runs with compare_vqa.py. Exit status: 0 all answered, 1 some
# questions failed (listed in results.json; RESUME=1 retries them), 2 bad input (nothing started), 130 interrupted.
# While the chunks run it prints their progress (answered/total per chunk) and, once loaded, the device and dtype
# each model really is on (from the chunk's log); without a GPU the chunks run on the CPU and it says so.
set -eu

# ---- settings
GPU_LIST="${GPU_LIST:-auto}"              # comma-separated GPU ids, one chunk (process) per GPU; auto = every
                                          # GPU present, or one chunk on the CPU when there is none
MODEL_PATH="${MODEL_PATH:-./models/Qwen2.5-VL-3B-Instruct}"
ADAPTER_PATH="${ADAPTER_PATH:-}"          # optional LoRA adapter folder; empty = MODEL_PATH is used as it is
NAME="${NAME:-my-model}"                  # the model's name in results.json and comparisons
TASK="${TASK:-textvqa}"                   # textvqa | mmbench | vqa
ANNOTATIONS="${ANNOTATIONS:-./data/textvqa/TextVQA_0.5.1_val.json}"   # textvqa
TSV="${TSV:-./data/mmbench/mmbench_dev_en.tsv}"                       # mmbench
QUESTIONS="${QUESTIONS:-}"                # vqa: JSONL of {question_id, image, question, answers}
IMAGE_DIR="${IMAGE_DIR:-}"                # textvqa: empty = ./data/textvqa/train_images; vqa/mmbench: where relative
                                          # image paths start (empty: the question file's folder)
OUTPUT_DIR="${OUTPUT_DIR:-./results/$TASK/$NAME}"
BATCH_SIZE="${BATCH_SIZE:-8}"
MAX_NEW_TOKENS="${MAX_NEW_TOKENS:-32}"
LIMIT="${LIMIT:-}"                        # only the first N questions (empty: all)
RESUME="${RESUME:-0}"                     # 1 = continue interrupted chunks; 0 = replace earlier answers
PYTHON="${PYTHON:-}"                      # empty: python3, else python
# ---- end of settings

HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/vlmkit/launcher.sh"
launcher_start "$0" "$HERE/eval_vqa.py" "$@"

case "$TASK" in
    textvqa) DATA="--annotations $ANNOTATIONS --image_dir ${IMAGE_DIR:-./data/textvqa/train_images}" ;;
    mmbench) DATA="--tsv $TSV${IMAGE_DIR:+ --image_dir $IMAGE_DIR}" ;;
    *) DATA="--questions $QUESTIONS${IMAGE_DIR:+ --image_dir $IMAGE_DIR}" ;;
esac
GPUS_FOUND=$(launcher_gpus)
GPU_NOTE=
if [ "$GPU_LIST" = "auto" ]; then
    if [ "$GPUS_FOUND" -gt 0 ]; then GPU_LIST=$(seq -s, 0 $((GPUS_FOUND - 1))); else GPU_LIST=cpu; fi
fi
if [ "$GPU_LIST" = "cpu" ] || [ "$GPUS_FOUND" -eq 0 ]; then
    ON_GPU=0
    [ "$GPU_LIST" = "cpu" ] || GPU_NOTE=" (GPU_LIST=$GPU_LIST, but no GPU was found)"
else
    ON_GPU=1
fi
NUM_CHUNKS=$(echo "$GPU_LIST" | tr ',' '\n' | grep -c .)
MODE=$([ "$RESUME" = "1" ] && echo --resume || echo --overwrite)
for arg in "$@"; do case "$arg" in --resume|--overwrite) MODE= ;; esac; done  # an explicit flag wins over RESUME
# The settings' flags first, the user's extra arguments last (argparse keeps the last value of a flag). $DATA is
# split on spaces on purpose: keep data paths free of spaces, or pass the flags as extra arguments.
# shellcheck disable=SC2086
set -- --task "$TASK" $DATA --model_path "$MODEL_PATH" --output_dir "$OUTPUT_DIR" --name "$NAME" \
    --batch_size "$BATCH_SIZE" --max_new_tokens "$MAX_NEW_TOKENS" --num_chunks "$NUM_CHUNKS" \
    ${ADAPTER_PATH:+--adapter_path "$ADAPTER_PATH"} ${LIMIT:+--limit "$LIMIT"} $MODE "$@"

# Check everything once (question set, images, model, adapter, outputs) before any process starts.
"$PYTHON" "$HERE/eval_vqa.py" "$@" --chunk_idx 0 --dry_run

ON=$([ "$ON_GPU" = "1" ] && echo "GPU $GPU_LIST" || echo "the CPU${GPU_NOTE}")
echo "eval_vqa.sh: $NAME <- $MODEL_PATH${ADAPTER_PATH:+ + adapter $ADAPTER_PATH} on $TASK, $NUM_CHUNKS chunk(s) on $ON"
mkdir -p "$OUTPUT_DIR/logs"
IDX=0
PIDS=
for GPU in $(echo "$GPU_LIST" | tr ',' ' '); do
    LOG="$OUTPUT_DIR/logs/chunk-$IDX-of-$NUM_CHUNKS.log"
    if [ "$ON_GPU" = "1" ]; then
        CUDA_VISIBLE_DEVICES=$GPU "$PYTHON" "$HERE/eval_vqa.py" "$@" --chunk_idx "$IDX" > "$LOG" 2>&1 &
        WHERE="GPU $GPU"
    else
        CUDA_VISIBLE_DEVICES= "$PYTHON" "$HERE/eval_vqa.py" "$@" --device cpu --chunk_idx "$IDX" > "$LOG" 2>&1 &
        WHERE="CPU"
    fi
    PIDS="$PIDS $!"
    echo "  chunk $IDX on $WHERE: pid $!, log $LOG"
    IDX=$((IDX + 1))
done
trap 'for P in $PIDS; do kill "$P" 2>/dev/null || true; done; exit 130' INT TERM

# Progress while the chunks run: each chunk's last "answered/total" (its progress bar in the log) and, once its
# model is loaded, the device and dtype it really is on (the log line "loaded <model> (<class>, <device>, <dtype>)").
SHOWN=
LAST=
while :; do
    RUNNING=0
    for PID in $PIDS; do kill -0 "$PID" 2>/dev/null && RUNNING=1; done
    STATUS=
    IDX=0
    for PID in $PIDS; do
        LOG="$OUTPUT_DIR/logs/chunk-$IDX-of-$NUM_CHUNKS.log"
        DEV=$(sed -n 's/.* loaded .* (\([^,]*\), \([^,]*\), \([^)]*\))$/\2, \3/p' "$LOG" 2>/dev/null | tail -n 1)
        case " $SHOWN " in *" $IDX "*) ;; *) if [ -n "$DEV" ]; then
            echo "  chunk $IDX: model on $DEV"; SHOWN="$SHOWN $IDX"; fi ;; esac
        DONE=$(tr '\r' '\n' < "$LOG" 2>/dev/null | grep '^answering:' | tail -n 1 |
            grep -o '[0-9][0-9]*/[0-9][0-9]* \[' | tr -d ' [') || DONE=
        STATUS="$STATUS chunk $IDX ${DONE:-starting}"
        IDX=$((IDX + 1))
    done
    if [ "$STATUS" != "$LAST" ]; then echo "  answering:$STATUS"; LAST=$STATUS; fi
    [ "$RUNNING" = "1" ] || break
    sleep "${PROGRESS_SECONDS:-2}"
done

WORST=0
IDX=0
for PID in $PIDS; do
    RC=0
    wait "$PID" || RC=$?
    LOG="$OUTPUT_DIR/logs/chunk-$IDX-of-$NUM_CHUNKS.log"
    if [ "$RC" -gt 1 ]; then
        echo "  chunk $IDX failed (exit $RC); end of $LOG:" >&2
        tail -n 5 "$LOG" >&2
    fi
    [ "$RC" -gt "$WORST" ] && WORST=$RC
    IDX=$((IDX + 1))
done
if [ "$WORST" -gt 1 ]; then
    echo "error: not merged; fix the failed chunks and rerun with RESUME=1 (finished answers are kept)" >&2
    exit "$WORST"
fi

# Merge: --resume/--overwrite (from $MODE or the extra arguments) allow replacing an earlier results.json.
exec "$PYTHON" "$HERE/eval_vqa.py" "$@" --merge
