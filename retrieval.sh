#!/bin/sh
# retrieval.sh: fine-tune CLIP/SigLIP for text-image retrieval (retrieval.py train) on one GPU or several.
#
#   sh retrieval.sh                                             # the settings below
#   NUM_GPUS=4 CONFIG=configs/retrieval/my_vases.yaml sh retrieval.sh
#   sh retrieval.sh --config_override batch_size=64 epochs=5    # extra arguments go to `retrieval.py train` unchanged
#   sh retrieval.sh --resume_from_checkpoint last               # continue an interrupted run
#   sh retrieval.sh --tiny                                      # demo: tiny random CLIP, 64 synthetic shapes, CPU
#
# NUM_GPUS > 1 starts one process per GPU with torchrun (LAUNCHER=accelerate: accelerate launch); every process
# scores its texts against the images of ALL processes (negatives gathered with gradients), so the contrastive batch
# is NUM_GPUS x batch_size. Outputs (LoRA adapter, merged/, checkpoints/, metrics.jsonl, training_curves.png) go to
# the config's output_dir. --tiny trains on a temporary folder (TINY_DIR) and then prints the zero-shot vs
# fine-tuned table of `retrieval.py eval`; TINY_NUM_GPUS=2 runs it as two CPU processes.
# Exit status: 0 done, 1 the merge check failed (adapter kept), 2 bad input or settings, 130 interrupted.
set -eu

# ---- settings
NUM_GPUS="${NUM_GPUS:-auto}"              # processes, one per GPU; > 1 = torchrun (or accelerate launch);
                                          # auto = the GPUs present (none: one CPU process)
CONFIG="${CONFIG:-configs/retrieval/clip_text_to_image.yaml}"  # YAML config (python retrieval.py train --list_keys)
LAUNCHER="${LAUNCHER:-torchrun}"          # torchrun | accelerate (used when NUM_GPUS > 1)
MASTER_PORT="${MASTER_PORT:-29501}"
PYTHON="${PYTHON:-}"                      # empty: python3, else python
# ---- end of settings

HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/vlmkit/launcher.sh"
launcher_start "$0" "$HERE/retrieval.py" "$@"

TINY=0
if [ "${1:-}" = "--tiny" ]; then
    shift
    TINY=1
    TINY_DIR="${TINY_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/vlmkit-retrieval-tiny.XXXXXX")}"
    mkdir -p "$TINY_DIR"
    echo "tiny retrieval demo in $TINY_DIR"
    (cd "$HERE" && "$PYTHON" -m demo.tiny "$TINY_DIR/models" --models clip_words > "$TINY_DIR/models.txt" &&
        "$PYTHON" -m demo.tiny.word_clip "$TINY_DIR/data" > /dev/null)
    NUM_GPUS="${TINY_NUM_GPUS:-1}"
    CONFIG="$HERE/configs/retrieval/clip_text_to_image.yaml"
    set -- --config_override "model_name_or_path=$TINY_DIR/models/clip_words" \
        "data_path=$TINY_DIR/data/train.jsonl" "val_data_path=$TINY_DIR/data/val.jsonl" image_root=null \
        "output_dir=$TINY_DIR/output" epochs=12 "batch_size=$((16 / NUM_GPUS))" learning_rate=1e-2 warmup_ratio=0 \
        lora_r=8 lora_alpha=16 "lora_target_modules=q_proj,k_proj,v_proj,out_proj,fc1,fc2,text_projection,visual_projection" \
        logging_steps=1 save_total_limit=null "$@"
fi

GPUS_FOUND=$(launcher_gpus)
if [ "$NUM_GPUS" = "auto" ]; then NUM_GPUS=$([ "$GPUS_FOUND" -gt 0 ] && echo "$GPUS_FOUND" || echo 1); fi
case "$NUM_GPUS" in ''|*[!0-9]*|0) echo "error: NUM_GPUS=$NUM_GPUS: a number of processes (1 or more) or auto" >&2; exit 2 ;; esac
echo "retrieval.sh: $GPUS_FOUND GPU(s) found -> $NUM_GPUS process(es) on $([ "$GPUS_FOUND" -gt 0 ] && echo GPU || echo CPU) (set NUM_GPUS to choose)"
export TOKENIZERS_PARALLELISM=false
set -- train "$CONFIG" "$@"
if [ "$NUM_GPUS" -gt 1 ]; then
    if [ "$LAUNCHER" = "accelerate" ]; then
        "$PYTHON" -m accelerate.commands.launch --num_processes "$NUM_GPUS" --main_process_port "$MASTER_PORT" \
            "$HERE/retrieval.py" "$@"
    else
        "$PYTHON" -m torch.distributed.run --nproc_per_node "$NUM_GPUS" --master_port "$MASTER_PORT" \
            "$HERE/retrieval.py" "$@"
    fi
else
    "$PYTHON" "$HERE/retrieval.py" "$@"
fi

if [ "$TINY" = "1" ]; then
    "$PYTHON" "$HERE/retrieval.py" eval --model "$TINY_DIR/output/merged" --data "$TINY_DIR/data/val.jsonl" \
        --zero_shot "$TINY_DIR/models/clip_words" --output "$TINY_DIR/output/eval.json"
    echo "fine-tuned: $TINY_DIR/output/merged   curves: $TINY_DIR/output/training_curves.png"
fi
