#!/bin/sh
# train.sh: train a captioning VLM with train.py (a LLaVA-style model or LoRA on Qwen2.5-VL), then merge the adapter.
#
#   sh train.sh                            # the default recipe (configs/train/llava_siglip_qwen2_5.yaml)
#   RECIPE=qwen2_5_vl_lora sh train.sh     # another named recipe: configs/train/$RECIPE.yaml (or a path to a file)
#   sh train.sh --max_steps 100            # extra flags go to train.py unchanged (they override everything)
#   sh train.sh --tiny                     # demo: tiny random models trained on examples/ on CPU in seconds, merged
#   ARCH=qwen2_5_vl sh train.sh --tiny
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 sh train.sh   # on the first machine; NODE_RANK=1 on the second
#   LAUNCHER=deepspeed HOSTFILE=hostfile sh train.sh        # deepspeed starts every host of the hostfile (ssh)
#
# The recipe file holds the model and training settings (keys: train.py's flags); a setting below that is not
# empty overrides the recipe's value, and flags after the script override both. Every setting can also come from
# the environment (LR=1e-4 NUM_GPUS=4 sh train.sh). The script fits the machine: one process per GPU present with
# DeepSpeed ZeRO-3 and bf16; without a GPU, ONE CPU process in fp32 without DeepSpeed. It prints what it chose.
# --tiny (first argument) uses tiny random models (python -m demo.tiny), the bundled examples and RECIPE=tiny.
# Before starting several processes, train.py --preflight_only checks settings and data once: bad input is one line.
set -eu
cd "$(dirname "$0")"

# ---- settings
RECIPE=${RECIPE:-llava_siglip_qwen2_5}       # configs/train/$RECIPE.yaml, or a path to a .yaml/.json recipe
NUM_GPUS=${NUM_GPUS:-auto}                    # processes per machine (one per GPU); 1 = no launcher needed;
                                              # auto = the GPUs present (none: one CPU process)
LAUNCHER=${LAUNCHER:-torchrun}                # torchrun | deepspeed (used when NUM_GPUS > 1 or ZERO_CONFIG is set)
MASTER_PORT=${MASTER_PORT:-29500}
NNODES=${NNODES:-1}                           # torchrun: machines; run this script on each with its own NODE_RANK
NODE_RANK=${NODE_RANK:-0}                     # torchrun: this machine's index (0 = the master, which also merges)
MASTER_ADDR=${MASTER_ADDR:-}                  # address of the NODE_RANK=0 machine (empty: torchrun's/deepspeed's own)
HOSTFILE=${HOSTFILE:-}                        # deepspeed: "host slots=N" lines; started from here on every host
# Empty settings below: the recipe's value.
ARCH=${ARCH:-}                                # llava (vision + projector + LM) | qwen2_5_vl (LoRA on Qwen2.5-VL)
STAGE=${STAGE:-}                              # llava: pretrain (projector only) | finetune (LoRA + projector)
VISION_MODEL=${VISION_MODEL:-}                # llava: CLIP or SigLIP folder
LM_MODEL=${LM_MODEL:-}                        # llava: Qwen2.5 / Qwen3 / Llama / Gemma / Phi-3 folder
BASE_VLM=${BASE_VLM:-}                        # instead of composing: ./models/Qwen2.5-VL-3B-Instruct, or a LLaVA checkpoint
PRETRAINED_PROJECTOR=${PRETRAINED_PROJECTOR:-}  # llava finetune: the output of a STAGE=pretrain run
DATA=${DATA:-./data/train.jsonl}              # training JSONL, captions.json, LLaVA JSON or groundTruth.json-style file
EVAL_DATA=${EVAL_DATA:-}                      # held-out data (e.g. the val split): eval_loss, loss_curve.png
IMAGE_FOLDER=${IMAGE_FOLDER:-}                # where image paths are relative to (multi-view object folders for groundTruth)
EVAL_IMAGE_FOLDER=${EVAL_IMAGE_FOLDER:-}      # the same for EVAL_DATA (empty: IMAGE_FOLDER)
PROMPT=${PROMPT:-}                            # caption-only data: the prompt you will caption with (empty: the
                                              # caption prompt qwen.py/test.sh use for multi-view objects)
OUTPUT_DIR=${OUTPUT_DIR:-}                    # empty: ./outputs/ARCH-STAGE (the recipe's; e.g. ./outputs/llava-finetune)
ZERO_CONFIG=${ZERO_CONFIG-auto}               # zero2 | zero3 | zero3_offload | empty for no DeepSpeed;
                                              # auto = zero3 with GPUs, none without
BATCH_SIZE=${BATCH_SIZE:-}                    # per GPU
GRAD_ACCUM=${GRAD_ACCUM:-}
LR=${LR:-}                                    # LoRA (pretrain: the projector's; LLaVA used 1e-3)
PROJECTOR_LR=${PROJECTOR_LR:-}                # llava: the projector's own rate (qwen2_5_vl: the merger's)
EPOCHS=${EPOCHS:-}
MAX_STEPS=${MAX_STEPS:-}                      # > 0 overrides EPOCHS
SAVE_STEPS=${SAVE_STEPS:-}
LOGGING_STEPS=${LOGGING_STEPS:-}
LORA_R=${LORA_R:-}
LORA_ALPHA=${LORA_ALPHA:-}
BF16=${BF16:-auto}                            # 1 = bfloat16 mixed precision; auto = 1 with GPUs, 0 (fp32) without
GRAD_CKPT=${GRAD_CKPT:-}                      # 1 = gradient checkpointing (less memory, ~30% slower), 0 = off
MERGE=${MERGE:-1}                             # 1 = merge the final adapter into ${OUTPUT_DIR}-merged
PYTHON=${PYTHON:-}                            # empty: python3, else python
# ---- end of settings

. ./vlmkit/launcher.sh
launcher_start "$0" train.py "$@"

if [ "${1:-}" = "--tiny" ]; then
    shift
    TINY_DIR=${TINY_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/vlmkit-tiny.XXXXXX")}
    mkdir -p "$TINY_DIR"
    echo "tiny demo in $TINY_DIR"
    RECIPE=tiny ARCH=${ARCH:-llava}
    if [ "$ARCH" = "llava" ]; then
        "$PYTHON" -m demo.tiny "$TINY_DIR/models" --models siglip,qwen3_lm > "$TINY_DIR/models.txt"
        VISION_MODEL=$TINY_DIR/models/siglip LM_MODEL=$TINY_DIR/models/qwen3_lm BASE_VLM= PROJECTOR_LR=1e-2
    else
        "$PYTHON" -m demo.tiny "$TINY_DIR/models" --models qwen2_5_vl > "$TINY_DIR/models.txt"
        BASE_VLM=$TINY_DIR/models/qwen2_5_vl PROJECTOR_LR=
    fi
    STAGE=finetune PRETRAINED_PROJECTOR=
    DATA=examples/groundTruth.json IMAGE_FOLDER=examples/multiview_images EVAL_DATA=examples/groundTruth.json
    # An --eval_data of your own (passed after --tiny) is read relative to its own folder, not the demo's images.
    prev=
    for arg in "$@"; do
        case "$prev" in --eval_data) EVAL_DATA= EVAL_IMAGE_FOLDER=$(dirname -- "$arg") ;; esac
        case "$arg" in --eval_data=*) EVAL_DATA= EVAL_IMAGE_FOLDER=$(dirname -- "${arg#--eval_data=}") ;; esac
        prev=$arg
    done
    OUTPUT_DIR=$TINY_DIR/output
    NUM_GPUS=${TINY_NUM_GPUS:-1} ZERO_CONFIG=${TINY_ZERO_CONFIG:-} NNODES=1 NODE_RANK=0 HOSTFILE=
    BATCH_SIZE= GRAD_ACCUM= LR= EPOCHS= MAX_STEPS= SAVE_STEPS= LOGGING_STEPS= LORA_R= LORA_ALPHA=
    BF16=0 GRAD_CKPT= MERGE=1
fi
case "$RECIPE" in
    */*|*.yaml|*.yml|*.json) RECIPE_FILE=$RECIPE ;;
    *) RECIPE_FILE=configs/train/$RECIPE.yaml ;;
esac
if [ ! -f "$RECIPE_FILE" ]; then
    echo "error: RECIPE=$RECIPE: $RECIPE_FILE not found (named recipes: $(ls configs/train | sed 's/\.yaml$//' | tr '\n' ' '))" >&2
    exit 2
fi
if [ -z "$OUTPUT_DIR" ]; then
    RECIPE_ARCH=${ARCH:-$(sed -n 's/^arch: *\([a-z0-9_]*\).*/\1/p' "$RECIPE_FILE")}
    RECIPE_STAGE=${STAGE:-$(sed -n 's/^stage: *\([a-z]*\).*/\1/p' "$RECIPE_FILE")}
    OUTPUT_DIR=./outputs/${RECIPE_ARCH:-llava}-${RECIPE_STAGE:-finetune}
fi

# Fit the machine: "auto" settings follow the GPUs present; say what was chosen.
GPUS_FOUND=$(launcher_gpus)
if [ "$NUM_GPUS" = "auto" ]; then NUM_GPUS=$([ "$GPUS_FOUND" -gt 0 ] && echo "$GPUS_FOUND" || echo 1); fi
if [ "$ZERO_CONFIG" = "auto" ]; then ZERO_CONFIG=$([ "$GPUS_FOUND" -gt 0 ] && echo zero3 || echo); fi
if [ "$BF16" = "auto" ]; then BF16=$([ "$GPUS_FOUND" -gt 0 ] && echo 1 || echo 0); fi
case "$NUM_GPUS" in ''|*[!0-9]*|0) echo "error: NUM_GPUS=$NUM_GPUS: a number of processes (1 or more) or auto" >&2; exit 2 ;; esac
echo "train.sh: $GPUS_FOUND GPU(s) found -> $NUM_GPUS process(es) per machine on $([ "$GPUS_FOUND" -gt 0 ] && echo GPU || echo CPU)," \
    "$([ "$BF16" = "1" ] && echo bf16 || echo fp32), $([ -n "$ZERO_CONFIG" ] && echo "DeepSpeed $ZERO_CONFIG" || echo "no DeepSpeed")" \
    "(set NUM_GPUS, BF16, ZERO_CONFIG to choose)"

# Build train.py's arguments: the recipe, then the settings that are not empty (prepended from last to first, so
# any extra command-line flags stay last and win).
[ "$GRAD_CKPT" = "1" ] && set -- --gradient_checkpointing true "$@"
[ "$GRAD_CKPT" = "0" ] && set -- --gradient_checkpointing false "$@"
[ "$BF16" = "1" ] && set -- --bf16 "$@"
[ -n "$ZERO_CONFIG" ] && set -- --deepspeed "$ZERO_CONFIG" "$@"
[ -n "$LORA_ALPHA" ] && set -- --lora_alpha "$LORA_ALPHA" "$@"
[ -n "$LORA_R" ] && set -- --lora_r "$LORA_R" "$@"
[ -n "$LOGGING_STEPS" ] && set -- --logging_steps "$LOGGING_STEPS" "$@"
[ -n "$SAVE_STEPS" ] && set -- --save_steps "$SAVE_STEPS" "$@"
[ -n "$MAX_STEPS" ] && set -- --max_steps "$MAX_STEPS" "$@"
[ -n "$EPOCHS" ] && set -- --num_train_epochs "$EPOCHS" "$@"
[ -n "$PROJECTOR_LR" ] && set -- --projector_lr "$PROJECTOR_LR" "$@"
[ -n "$LR" ] && set -- --learning_rate "$LR" "$@"
[ -n "$GRAD_ACCUM" ] && set -- --gradient_accumulation_steps "$GRAD_ACCUM" "$@"
[ -n "$BATCH_SIZE" ] && set -- --per_device_train_batch_size "$BATCH_SIZE" "$@"
[ -n "$PROMPT" ] && set -- --prompt "$PROMPT" "$@"
[ -n "$EVAL_IMAGE_FOLDER" ] && set -- --eval_image_folder "$EVAL_IMAGE_FOLDER" "$@"
[ -n "$EVAL_DATA" ] && set -- --eval_data "$EVAL_DATA" "$@"
[ -n "$IMAGE_FOLDER" ] && set -- --image_folder "$IMAGE_FOLDER" "$@"
set -- --data "$DATA" --output_dir "$OUTPUT_DIR" "$@"
[ -n "$PRETRAINED_PROJECTOR" ] && set -- --pretrained_projector "$PRETRAINED_PROJECTOR" "$@"
[ -n "$BASE_VLM" ] && set -- --base_model "$BASE_VLM" "$@"
if { [ -n "$BASE_VLM" ] || [ -n "$PRETRAINED_PROJECTOR" ]; } && grep -q '^\(vision\|lm\)_model:' "$RECIPE_FILE"; then
    set -- --vision_model "" --lm_model "" "$@"  # a composing recipe's models give way to the checkpoint
fi
[ -n "$LM_MODEL" ] && set -- --lm_model "$LM_MODEL" "$@"
[ -n "$VISION_MODEL" ] && set -- --vision_model "$VISION_MODEL" "$@"
[ -n "$STAGE" ] && set -- --stage "$STAGE" "$@"
[ -n "$ARCH" ] && set -- --arch "$ARCH" "$@"
set -- --config "$RECIPE_FILE" "$@"

# DeepSpeed JIT-compiles a communication op on first use; keep it between runs.
export TORCH_EXTENSIONS_DIR="${TORCH_EXTENSIONS_DIR:-$HOME/.cache/torch_extensions}"
export TOKENIZERS_PARALLELISM=false

if [ "$NUM_GPUS" -gt 1 ] || [ -n "$ZERO_CONFIG" ] || [ "$NNODES" -gt 1 ] || [ -n "$HOSTFILE" ]; then
    if [ "$NNODES" -gt 1 ] && [ -z "$MASTER_ADDR" ]; then
        echo "error: NNODES=$NNODES needs MASTER_ADDR (the address of the NODE_RANK=0 machine)" >&2; exit 2
    fi
    # One cheap pass before N processes start: bad input is one line here, not one error per process.
    if [ "$NODE_RANK" = "0" ]; then "$PYTHON" train.py "$@" --preflight_only; fi
    if [ "$LAUNCHER" = "deepspeed" ]; then
        set -- --num_gpus "$NUM_GPUS" --master_port "$MASTER_PORT" train.py "$@"
        [ -n "$MASTER_ADDR" ] && set -- --master_addr "$MASTER_ADDR" "$@"
        [ -n "$HOSTFILE" ] && set -- --hostfile "$HOSTFILE" "$@"
        "$PYTHON" -m deepspeed.launcher.runner "$@"
    else
        [ -n "$HOSTFILE" ] && { echo "error: HOSTFILE is for LAUNCHER=deepspeed; torchrun takes NNODES/NODE_RANK" >&2; exit 2; }
        export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"  # torchrun's own default, without its notice
        set -- --nproc_per_node "$NUM_GPUS" --master_port "$MASTER_PORT" train.py "$@"
        [ "$NNODES" -gt 1 ] && set -- --nnodes "$NNODES" --node_rank "$NODE_RANK" --master_addr "$MASTER_ADDR" "$@"
        "$PYTHON" -m vlmkit.training.launch "$@"
    fi
else
    "$PYTHON" train.py "$@"
fi

for arg in "$@"; do
    [ "$arg" = "--preflight_only" ] && MERGE=0  # nothing was trained: nothing to merge
done
if [ "$MERGE" = "1" ] && [ "$NODE_RANK" = "0" ]; then
    "$PYTHON" merge_lora_weights.py --adapter "$OUTPUT_DIR" --output_dir "${OUTPUT_DIR}-merged" --overwrite
    echo "merged checkpoint: ${OUTPUT_DIR}-merged"
fi
