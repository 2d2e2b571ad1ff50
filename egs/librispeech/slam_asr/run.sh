#!/usr/bin/env bash
# SLAM-ASR on LibriSpeech 960 h: frozen speech encoder + trainable projector + frozen LLM.
#
#   ./run.sh --stage 0 --stop-stage 5                       # everything, conf/slam_asr.yaml
#   ./run.sh --config conf/whisper_small-vicuna.yaml --ngpu 8
#   ./run.sh --stage 4 --stop-stage 5 --decode-opts "--avg 5"   # decode + score again
set -euo pipefail

stage=0                    # first stage to run
stop_stage=5               # last stage to run
config=conf/slam_asr.yaml  # experiment: encoder x LLM (see conf/)
exp_dir=                   # default: exp/<name derived from the config's settings>
dl_dir=$PWD/download       # LibriSpeech is downloaded to (or already lives in) $dl_dir/LibriSpeech
ngpu=1                     # training/decoding processes (torchrun --nproc_per_node)
nj=8                       # feature extraction jobs
overrides=""               # extra config settings, e.g. "train.lr=5e-5 train.max_steps=20000"
decode_opts=""             # extra options for slamasr.bin.decode, e.g. "--avg 5 --checkpoint last"
skip_download=false        # true: never try to download (data and models already in place)
force=false                # true: redo stages whose outputs exist, overwrite results
parts="dev-clean dev-other test-clean test-other train-clean-100 train-clean-360 train-other-500"

. ./path.sh
. parse_options.sh

log() { echo -e "$(date '+%Y-%m-%d %H:%M:%S') (${0##*/}:${BASH_LINENO[0]}:${FUNCNAME[1]}) $*"; }
# shellcheck disable=SC2086
conf_get() { python -m slamasr.bin.show_config --config "$config" --get "$1" $overrides; }

conf_get name > /dev/null  # validates the config (and overrides) before any work
[ -n "$exp_dir" ] || exp_dir=exp/$(conf_get name)
input_kind=$(conf_get data.input_kind)
force_flag=""; [ "$force" = true ] && force_flag="--overwrite"
log "config=$config exp_dir=$exp_dir input_kind=$input_kind"

if [ $stage -le 0 ] && [ $stop_stage -ge 0 ]; then
  log "Stage 0: download LibriSpeech and the pretrained models"
  if [ "$skip_download" = true ]; then
    log "skip_download=true: expecting $dl_dir/LibriSpeech and models in place"
  else
    python -m slamasr.bin.prepare_librispeech --download-only --corpus-dir "$dl_dir"
    # shellcheck disable=SC2086
    python -m slamasr.bin.fetch_models --config "$config" $overrides
  fi
fi

if [ $stage -le 1 ] && [ $stop_stage -ge 1 ]; then
  log "Stage 1: Lhotse manifests -> data/manifests"
  if [ ! -f data/manifests/.done ] || [ "$force" = true ]; then
    # shellcheck disable=SC2086
    python -m slamasr.bin.prepare_librispeech --corpus-dir "$dl_dir" \
      --output-dir data/manifests --parts $parts --num-jobs "$nj"
    python -m slamasr.bin.validate_data --cuts data/manifests/librispeech_cuts_*.jsonl.gz \
      --report data/manifests/validation.txt || log "some cuts have problems (see report)"
    touch data/manifests/.done
  fi
fi

if [ $stage -le 2 ] && [ $stop_stage -ge 2 ]; then
  log "Stage 2: encoder input features ($input_kind)"
  if [ "$input_kind" = audio ]; then
    log "SSL encoders read audio on the fly: nothing to compute"
  else
    n_mels=$(conf_get data.num_mel_bins)
    feat_dir=data/${input_kind}
    [ "$input_kind" = whisper_mel ] && [ "$n_mels" != 80 ] && feat_dir=data/whisper_mel${n_mels}
    for cuts in data/manifests/librispeech_cuts_*.jsonl.gz; do
      out=$feat_dir/$(basename "$cuts")
      if [ -f "$out" ] && [ "$force" != true ]; then continue; fi
      python -m slamasr.bin.compute_features --cuts "$cuts" --output-dir "$feat_dir" \
        --kind "$input_kind" --num-mel-bins "$n_mels" --num-jobs "$nj"
    done
  fi
fi

if [ $stage -le 3 ] && [ $stop_stage -ge 3 ]; then
  log "Stage 3: train the projector on $ngpu process(es) -> $exp_dir"
  resume_flag="--resume"; [ "$force" = true ] && resume_flag="--overwrite"
  # shellcheck disable=SC2086
  torchrun --standalone --nproc_per_node="$ngpu" -m slamasr.bin.train \
    --config "$config" --exp-dir "$exp_dir" $resume_flag $overrides
fi

if [ $stage -le 4 ] && [ $stop_stage -ge 4 ]; then
  log "Stage 4: beam-search decoding of the test sets"
  # shellcheck disable=SC2086
  torchrun --standalone --nproc_per_node="$ngpu" -m slamasr.bin.decode \
    --exp-dir "$exp_dir" $force_flag $decode_opts
fi

if [ $stage -le 5 ] && [ $stop_stage -ge 5 ]; then
  log "Stage 5: kaldialign scoring -> $exp_dir/wer"
  for decode_dir in "$exp_dir"/decode-*/; do
    python -m slamasr.bin.score --exp-dir "$exp_dir" --decode-dir "$decode_dir"
  done
  python "$SLAMASR_ROOT/tools/collect_results.py" exp/*/wer
fi
log "Done: stages $stage..$stop_stage"
