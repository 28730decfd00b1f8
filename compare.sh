#!/usr/bin/env bash
# Batch caption evaluation: score every image_*.json in CAPTION_DIR against GROUND_TRUTH in ONE compare.py run
# (models loaded once) and build the comparison of THIS run: model_comparison_table.md/.csv,
# batch_evaluation_summary.json and a self-contained evaluation_report.html in OUTPUT_DIR.
#
#   ./compare.sh                                    # the bundled examples -> ./results
#   CAPTION_DIR=./data/captions GROUND_TRUTH=./data/groundTruth.json ./compare.sh
#   ./compare.sh --caption_dir ./data/captions --images_dir ./data/multiview_images --allow_missing
#   ./compare.sh -- --metrics semantic,retrieval    # anything after -- goes to compare.py as is
set -euo pipefail

# ---- settings: edit here, or override with environment variables or the flags below ----------------------------
CAPTION_DIR="${CAPTION_DIR:-./examples/captions}"          # where image_<model>.json files are
GROUND_TRUTH="${GROUND_TRUTH:-./examples/groundTruth.json}"
IMAGES_DIR="${IMAGES_DIR-./examples/multiview_images}"     # renders: CLIPScore + HTML thumbnails; empty = none
OUTPUT_DIR="${OUTPUT_DIR:-./results}"
CLIP_MODEL="${CLIP_MODEL:-./models/openai/clip-vit-base-patch32}"  # absent -> CLIP metrics null, overall partial
SENTENCE_MODEL="${SENTENCE_MODEL:-}"                        # empty = packaged all-MiniLM-L6-v2
DEVICE="${DEVICE:-auto}"
BATCH_SIZE="${BATCH_SIZE:-32}"
ALLOW_MISSING="${ALLOW_MISSING:-0}"                         # 1 = score the matched subset, record coverage
NO_COCO="${NO_COCO:-0}"                                     # 1 = skip BLEU/METEOR/ROUGE-L/CIDEr (Java)
PYTHON="${PYTHON:-}"
# ------------------------------------------------------------------------------------------------------------------

usage() {
    sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
    cat <<USAGE
flags (each overrides the setting of the same name):
  --caption_dir DIR  --ground_truth FILE  --images_dir DIR (or '')  --output_dir DIR
  --clip_model DIR   --sentence_model DIR  --device DEV  --batch_size N  --allow_missing  --no_coco
  --python EXE       -h|--help            -- ARGS...  (passed to compare.py)
USAGE
}

EXTRA=()
while [ $# -gt 0 ]; do
    case "$1" in
        --caption_dir) CAPTION_DIR="$2"; shift 2 ;;
        --ground_truth) GROUND_TRUTH="$2"; shift 2 ;;
        --images_dir) IMAGES_DIR="$2"; shift 2 ;;
        --output_dir) OUTPUT_DIR="$2"; shift 2 ;;
        --clip_model) CLIP_MODEL="$2"; shift 2 ;;
        --sentence_model) SENTENCE_MODEL="$2"; shift 2 ;;
        --device) DEVICE="$2"; shift 2 ;;
        --batch_size) BATCH_SIZE="$2"; shift 2 ;;
        --allow_missing) ALLOW_MISSING=1; shift ;;
        --no_coco) NO_COCO=1; shift ;;
        --python) PYTHON="$2"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        --) shift; EXTRA=("$@"); break ;;
        *) echo "compare.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

if [ -z "$PYTHON" ]; then
    if command -v python3 >/dev/null 2>&1; then PYTHON=python3
    elif command -v python >/dev/null 2>&1; then PYTHON=python
    else echo "compare.sh: error: neither python3 nor python found on PATH (set PYTHON=...)" >&2; exit 2
    fi
fi

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if [ ! -d "$CAPTION_DIR" ]; then
    echo "compare.sh: error: $CAPTION_DIR: caption folder not found (set CAPTION_DIR or --caption_dir)" >&2; exit 2
fi
if [ ! -f "$GROUND_TRUTH" ]; then
    echo "compare.sh: error: $GROUND_TRUTH: ground-truth file not found (set GROUND_TRUTH or --ground_truth)" >&2
    exit 2
fi

# Every image_*.json except the ground truth (in case it lives in the same folder under such a name).
gt_real="$(cd "$(dirname "$GROUND_TRUTH")" && pwd)/$(basename "$GROUND_TRUTH")"
FILES=()
shopt -s nullglob
for f in "$CAPTION_DIR"/image_*.json; do
    name="$(basename "$f")"
    f_real="$(cd "$(dirname "$f")" && pwd)/$name"
    if [ "$name" = "groundTruth.json" ] || [ "$f_real" = "$gt_real" ]; then
        echo "compare.sh: skipping ground truth $f"; continue
    fi
    FILES+=("$f")
done
shopt -u nullglob
if [ ${#FILES[@]} -eq 0 ]; then
    echo "compare.sh: error: no image_*.json caption files in $CAPTION_DIR" >&2; exit 2
fi

echo "compare.sh: ${#FILES[@]} caption file(s) in $CAPTION_DIR vs $GROUND_TRUTH -> $OUTPUT_DIR"
ARGS=(--generated "${FILES[@]}" --ground_truth "$GROUND_TRUTH" --output_dir "$OUTPUT_DIR"
      --clip_model "$CLIP_MODEL" --device "$DEVICE" --batch_size "$BATCH_SIZE")
[ -n "$IMAGES_DIR" ] && ARGS+=(--images_dir "$IMAGES_DIR")
[ -n "$SENTENCE_MODEL" ] && ARGS+=(--sentence_model "$SENTENCE_MODEL")
[ "$ALLOW_MISSING" = "1" ] && ARGS+=(--allow_missing)
[ "$NO_COCO" = "1" ] && ARGS+=(--no_coco)

"$PYTHON" "$SCRIPT_DIR/compare.py" "${ARGS[@]}" "${EXTRA[@]+"${EXTRA[@]}"}"

echo
echo "compare.sh: table    $OUTPUT_DIR/model_comparison_table.md (.csv)"
echo "compare.sh: summary  $OUTPUT_DIR/batch_evaluation_summary.json"
echo "compare.sh: report   $OUTPUT_DIR/evaluation_report.html"
