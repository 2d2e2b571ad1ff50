#!/usr/bin/env bash
# SLAM-ASR on LibriSpeech 960 h: frozen speech encoder + trainable projector + frozen LLM.
#
#   ./run.sh --stage 0 --stop-stage 5                       # everything, conf/slam_asr.yaml
#   ./run.sh --config conf/whisper_small-vicuna.yaml --ngpu 8
#   ./run.sh --stage 4 --stop-stage 5 --decode-opts "--avg 5"   # decode + score again
#   ./run.sh --stage 1 --skip-download true --dl-dir /data    # corpus already in /data/LibriSpeech
#   ./run.sh --stage 3 --stop-stage 3 --ngpu 8 --num-nodes 2 --node-rank 0 --master-addr node0
#                                                  # 2 x 8 GPUs; same command with --node-rank 1
#
# A finished stage leaves a .done sentinel (or refuses to overwrite results); --force true redoes.
set -euo pipefail

stage=0                    # first stage to run
stop_stage=5               # last stage to run
config=conf/slam_asr.yaml  # experiment: encoder x LLM (see conf/)
exp_dir=                   # default: exp/<name derived from the config's settings>
dl_dir=$PWD/download       # LibriSpeech is downloaded to (or already lives in) $dl_dir/LibriSpeech
ngpu=1                     # training/decoding processes per node (torchrun --nproc_per_node)
num_nodes=1                # training nodes; >1: run this script on every node (stage 3 only)
node_rank=0                # this node's index, 0..num_nodes-1 (static rendezvous)
master_addr=               # num_nodes>1: host name/IP of node 0, reachable from every node
master_port=29500          # num_nodes>1: a free TCP port on master_addr
rdzv_endpoint=             # instead of the 3 above: host:port of a c10d rendezvous (ranks auto)
nj=8                       # manifest/feature extraction jobs
overrides=""               # extra config settings, e.g. "train.lr=5e-5 train.max_steps=20000"
decode_opts=""             # extra slamasr.bin.decode options, e.g. "--avg 5 --set decode.batch_size=4"
skip_download=false        # true: never download (corpus in $dl_dir/LibriSpeech, models in place)
force=false                # true: redo stages whose outputs exist, overwrite results
parts="dev-clean dev-other test-clean test-other train-clean-100 train-clean-360 train-other-500"

run_command="./run.sh${*:+$(printf ' %q' "$@")}"; run_start=$(date +%s)  # for RESULTS.md (stage 5)
. ./path.sh
. parse_options.sh

log() { echo -e "$(date '+%Y-%m-%d %H:%M:%S') (${0##*/}:${BASH_LINENO[0]}:${FUNCNAME[1]}) $*"; }
die() { log "ERROR: $*" >&2; exit 1; }
# shellcheck disable=SC2086
conf_get() { python -m slamasr.bin.show_config --config "$config" --get "$1" $overrides; }
# must_run <sentinel>: true when the stage has to run (no sentinel yet, or --force true)
must_run() { [ ! -f "$1" ] || [ "$force" = true ]; }
# cuts_of <dir> <suffix> <part>...: the cut manifests of these parts
cuts_of() { local d=$1 s=$2; shift 2; printf "$d/librispeech_cuts_%s$s.jsonl.gz " "$@"; }

conf_get name > /dev/null || die "invalid config $config (overrides: '$overrides')"
[ -n "$exp_dir" ] || exp_dir=exp/$(conf_get name)
input_kind=$(conf_get data.input_kind)
manifests=data/manifests
train_parts=$(printf '%s\n' $parts | grep '^train-' || true)
log "config=$config exp_dir=$exp_dir input_kind=$input_kind"

if [ $stage -le 0 ] && [ $stop_stage -ge 0 ]; then
  log "Stage 0: download LibriSpeech and the pretrained models"
  if [ "$skip_download" = true ]; then
    for part in $parts; do
      [ -d "$dl_dir/LibriSpeech/$part" ] ||
        die "--skip-download true but $dl_dir/LibriSpeech/$part is missing; place the corpus there"
    done
  else
    # shellcheck disable=SC2086
    python -m slamasr.bin.prepare_librispeech --download-only --dl-dir "$dl_dir" --parts $parts ||
      die "LibriSpeech download failed (see above); place it in $dl_dir and use --skip-download true"
    # only the PyTorch files (safetensors, else .bin converted once to safetensors here)
    # shellcheck disable=SC2086
    python -m slamasr.bin.fetch_models --config "$config" $overrides ||
      die "pretrained models unavailable (see above); set the config's paths to local copies"
  fi
fi

if [ $stage -le 1 ] && [ $stop_stage -ge 1 ]; then
  log "Stage 1: Lhotse manifests -> $manifests"
  if must_run $manifests/.done; then
    [ "$force" = true ] && rm -f $manifests/librispeech_*.jsonl.gz
    # shellcheck disable=SC2086
    python -m slamasr.bin.prepare_librispeech --corpus-dir "$dl_dir/LibriSpeech" \
      --output-dir $manifests --parts $parts --num-jobs "$nj"
    if [ -n "$train_parts" ]; then  # shuffled once: the parts are not read one after another
      log "train-960 = $(echo $train_parts), shuffled"
      python -m slamasr.bin.combine_cuts --output $(cuts_of $manifests "" train-960) \
        $(cuts_of $manifests "" $train_parts)
    fi
    python -m slamasr.bin.validate_data --num-jobs "$nj" --cuts $(cuts_of $manifests "" $parts) \
      > $manifests/validation.txt || log "some cuts have problems: see $manifests/validation.txt"
    touch $manifests/.done
  fi
fi

if [ $stage -le 2 ] && [ $stop_stage -ge 2 ]; then
  log "Stage 2: encoder input features ($input_kind)"
  case "$input_kind" in
    audio) log "SSL encoders read audio on the fly: nothing to compute" ;;
    whisper_mel | fbank)
      n_mels=$(conf_get data.n_mels)
      feat_dir=data/$input_kind
      suffix=_$input_kind$([ "$input_kind" = fbank ] || echo "$n_mels")  # compute_features' naming
      if must_run "$feat_dir/.done$suffix"; then
        [ "$force" = true ] && rm -f "$feat_dir"/librispeech_cuts_*"$suffix".*
        # shellcheck disable=SC2046
        python -m slamasr.bin.compute_features --cuts $(cuts_of $manifests "" $parts) \
          --out-dir "$feat_dir" --kind "$input_kind" --n-mels "$n_mels" --num-jobs "$nj"
        [ -z "$train_parts" ] ||  # features are computed once per part; train-960 reuses them
          python -m slamasr.bin.combine_cuts --output $(cuts_of "$feat_dir" "$suffix" train-960) \
            $(cuts_of "$feat_dir" "$suffix" $train_parts)
        touch "$feat_dir/.done$suffix"
      fi
      ;;
    *) die "input_kind=$input_kind has no stage 2 in this recipe (slamasr.bin.compute_encoder_cache)" ;;
  esac
fi

if [ $stage -le 3 ] && [ $stop_stage -ge 3 ]; then
  log "Stage 3: train the projector on $num_nodes node(s) x $ngpu process(es) -> $exp_dir"
  if must_run "$exp_dir/.train.done"; then
    resume_flag="--resume"; [ "$force" = true ] && resume_flag="--overwrite"
    launch=--standalone  # one node; several: $exp_dir must be on a file system all nodes share
    if [ "$num_nodes" -gt 1 ] && [ -n "$rdzv_endpoint" ]; then
      launch="--nnodes=$num_nodes --rdzv-backend=c10d --rdzv-endpoint=$rdzv_endpoint"
      launch+=" --rdzv-id=$(basename "$exp_dir")"
    elif [ "$num_nodes" -gt 1 ]; then
      [ -n "$master_addr" ] || die "--num-nodes $num_nodes needs --master-addr (node 0's host)"
      [ "$node_rank" -ge 0 ] && [ "$node_rank" -lt "$num_nodes" ] ||
        die "--node-rank $node_rank must be in 0..$((num_nodes - 1))"
      launch="--nnodes=$num_nodes --node-rank=$node_rank"
      launch+=" --master-addr=$master_addr --master-port=$master_port"
    fi
    log "torchrun $launch --nproc-per-node=$ngpu"
    # shellcheck disable=SC2086
    torchrun $launch --nproc-per-node="$ngpu" -m slamasr.bin.train \
      --config "$config" --exp-dir "$exp_dir" $resume_flag $overrides
    touch "$exp_dir/.train.done"
  else
    log "$exp_dir/.train.done exists: skipping (--force true retrains from scratch)"
  fi
fi

# shellcheck disable=SC2086
decode_dir() { python -m slamasr.bin.decode --exp-dir "$exp_dir" $decode_opts --print-out-dir; }

if [ $stage -le 4 ] && [ $stop_stage -ge 4 ]; then
  log "Stage 4: beam-search decoding of the test sets"
  out=$(decode_dir) || die "cannot resolve the decode dir of $exp_dir"
  if must_run "$out/.done"; then
    force_flag=""; [ "$force" = true ] && force_flag="--overwrite"
    # shellcheck disable=SC2086
    torchrun --standalone --nproc_per_node="$ngpu" -m slamasr.bin.decode \
      --exp-dir "$exp_dir" $force_flag $decode_opts
    touch "$out/.done"
  else
    log "$out/.done exists: skipping (--force true decodes again)"
  fi
fi

if [ $stage -le 5 ] && [ $stop_stage -ge 5 ]; then
  log "Stage 5: kaldialign scoring -> $exp_dir/wer"
  out=$(decode_dir) || die "cannot resolve the decode dir of $exp_dir"
  [ -f "$out/.done" ] || die "$out is not decoded yet: run stage 4 first"
  if must_run "$out/.scored"; then
    python -m slamasr.bin.score --exp-dir "$exp_dir" --decode-dir "$out" \
      --text-norm "$(conf_get data.text_norm)"
    touch "$out/.scored"
  else
    log "$out/.scored exists: skipping (--force true scores again)"
  fi
  python "$SLAMASR_ROOT/tools/collect_results.py" "$exp_dir/wer"
  # a dated section in RESULTS.md (command, commit, config, every wer column); one of the same
  # date and commit is kept (--force true replaces it)
  secs=$(( $(date +%s) - run_start ))
  existing="--keep-existing"; [ "$force" = true ] && existing="--replace"
  python "$SLAMASR_ROOT/tools/results_md.py" --results RESULTS.md --command "$run_command" \
    --wall-time "$((secs / 60)) min $((secs % 60)) s (stages $stage-$stop_stage)" $existing \
    "$exp_dir/wer"
fi
log "Done: stages $stage..$stop_stage"
