#!/usr/bin/env bash
# SLAM-ASR on a laptop: Whisper tiny.en + SmolLM2-135M on eSpeak NG English, all offline.
#
#   ./run.sh                          # stages 0-5, ~40 minutes on 2 CPU cores
#   ./run.sh --smoke true             # the same stages on a few utterances (CI)
#   ./run.sh --augment true           # train on augmented audio (speed / room / noise per utterance)
#   ./run.sh --stage 3 --lora-rank 8  # also a LoRA experiment (not in the paper): its own rows
#   ./run.sh --stage 4 --stop-stage 5 --decode-opts "--checkpoint last"
set -euo pipefail

stage=0                    # first stage to run
stop_stage=5               # last stage to run
config=conf/whisper_tiny_en-smollm2_135m.yaml   # experiment config
exp_dir=                   # default: exp/<name derived from the config's settings>
num_train=8000             # training utterances (generated sentences, 15 voices)
num_dev=200                # dev utterances
num_test=200               # in-domain test utterances (held-out generated sentences)
num_ood=233                # out-of-domain test: hand-written sentences, unseen voices
num_dev_ood=150            # out-of-domain dev: other hand-written sentences, other unseen voices
num_unseen=200             # test_unseen: voices and channels training never hears
augment=false              # false: the clean train split (chosen on dev and dev_ood: README);
                           # true: train_aug (each utterance under a seeded speed / room / noise
                           # condition, a third clean)
seed=0                     # corpus seed
nj=2                       # parallel jobs for synthesis and features
baseline_beams=4           # beam of Whisper tiny.en's own decoder (the reference line)
overrides=""               # extra config settings, e.g. "train.max_steps=400"
decode_opts=""             # extra options for slamasr.bin.decode
smoke=false                # true: a few utterances and steps (minutes), for CI
force=false                # true: redo stages whose outputs exist, overwrite results
lora_rank=0                # > 0: stages 3-5 also train a second experiment with LoRA adapters of
                           # this rank on the LLM (model.lora; not in the paper), decode it as the
                           # paper decodes (the LLM alone) and score it: its own exp dir and
                           # exp/*/wer rows beside the paper's line, never the paper's line

run_command="./run.sh${*:+$(printf ' %q' "$@")}"; run_start=$(date +%s)  # for RESULTS.md (stage 5)
. ./path.sh
. parse_options.sh

log() { echo -e "$(date '+%Y-%m-%d %H:%M:%S') (${0##*/}:${BASH_LINENO[0]}) $*"; }

if [ "$smoke" = true ]; then
  num_train=48; num_dev=8; num_test=8; num_ood=8; num_dev_ood=8; num_unseen=8
  overrides="train.max_steps=6 train.ctc_only_steps=2 train.warmup_steps=2 \
train.valid_interval=3 train.save_interval=3 train.log_interval=1 data.max_duration=12 $overrides"
  # a 6-step model loops until its token bound: a small bound keeps CI's decoding short
  decode_opts="--set decode.min_new_tokens_bound=24 $decode_opts"
  [ -n "$exp_dir" ] || exp_dir=exp/smoke
fi
case "$lora_rank" in ''|*[!0-9]*) echo "run.sh: --lora-rank $lora_rank: give a whole number >= 0" >&2; exit 1;; esac
# the training manifest: train (the conf's data.train_cuts) or, with --augment true, train_aug
train_split=train
if [ "$augment" = true ]; then
  train_split=train_aug
  overrides="data.train_cuts=data/encoder_cache/espeak_cuts_train_aug_whisper_mel80_enc.jsonl.gz $overrides"
fi
# shellcheck disable=SC2086
conf_get() { python -m slamasr.bin.show_config --config "$config" --get "$1" $overrides; }
conf_get name > /dev/null  # validates the config (and overrides) before any work
[ -n "$exp_dir" ] || exp_dir=exp/$(conf_get name)
lora_exp_dir=""; lora_overrides=""
if [ "$lora_rank" -gt 0 ]; then
  lora_overrides="model.lora.rank=$lora_rank $overrides"
  # shellcheck disable=SC2086
  lora_exp_dir=exp/$(python -m slamasr.bin.show_config --config "$config" --get name \
    $lora_overrides)-lora$lora_rank
  [ "$smoke" = true ] && lora_exp_dir=exp/smoke-lora$lora_rank
fi
whisper_dir=$(conf_get model.encoder.path)
llm_dir=$(conf_get model.llm.path)
splits="$train_split dev dev_ood test test_ood test_unseen"
log "config=$config exp_dir=$exp_dir smoke=$smoke${lora_exp_dir:+ lora_exp_dir=$lora_exp_dir}"

if [ $stage -le 0 ] && [ $stop_stage -ge 0 ]; then
  log "Stage 0: synthesize the corpus (augment=$augment); convert the packaged Whisper tiny.en and SmolLM2; word counts"
  python -m slamasr.bin.prepare_espeak_corpus --out-dir data --num-train $num_train \
    --num-dev $num_dev --num-test $num_test --num-ood $num_ood --num-dev-ood $num_dev_ood \
    --num-unseen $num_unseen --augment $augment --seed $seed --num-jobs $nj
  [ -f "$whisper_dir/model.safetensors" ] ||
    python -m slamasr.bin.convert_ct2_whisper --out-dir "$whisper_dir"
  [ -f "$llm_dir/model.safetensors" ] ||
    python -m slamasr.bin.convert_gguf_llm --out-dir "$llm_dir" --dtype float32
  # the decoder's word prior: the 100,000 most frequent words of general English (wordfreq)
  [ -f data/lang/word_counts.tsv ] ||
    python -m slamasr.bin.prepare_word_counts --out data/lang/word_counts.tsv --wordfreq en \
      --max-words 100000
fi

if [ $stage -le 1 ] && [ $stop_stage -ge 1 ]; then
  log "Stage 1: validate the Lhotse manifests in data/manifests"
  for s in $splits; do
    python -m slamasr.bin.validate_data --cuts data/manifests/espeak_cuts_$s.jsonl.gz \
      --input-kind audio --text-norm lower
  done
fi

if [ $stage -le 2 ] && [ $stop_stage -ge 2 ]; then
  log "Stage 2: Whisper log-mel features, then the frozen encoder's outputs, once"
  for s in $splits; do
    python -m slamasr.bin.compute_features --cuts data/manifests/espeak_cuts_$s.jsonl.gz \
      --out-dir data/whisper_mel --kind whisper_mel --num-jobs $nj
    # shellcheck disable=SC2086
    python -m slamasr.bin.compute_encoder_cache --config "$config" --out-dir data/encoder_cache \
      --num-jobs $nj --cuts data/whisper_mel/espeak_cuts_${s}_whisper_mel80.jsonl.gz $overrides
  done
fi

if [ $stage -le 3 ] && [ $stop_stage -ge 3 ]; then
  log "Stage 3: train the projector -> $exp_dir"
  resume_flag="--resume"; [ "$force" = true ] && resume_flag="--overwrite"
  # shellcheck disable=SC2086
  python -m slamasr.bin.train --config "$config" --exp-dir "$exp_dir" $resume_flag $overrides
  if [ -n "$lora_exp_dir" ]; then
    log "Stage 3: the same training with LoRA (rank $lora_rank) on the LLM -> $lora_exp_dir"
    # shellcheck disable=SC2086
    python -m slamasr.bin.train --config "$config" --exp-dir "$lora_exp_dir" $resume_flag \
      $lora_overrides
  fi
fi

if [ $stage -le 4 ] && [ $stop_stage -ge 4 ]; then
  log "Stage 4: decode the test sets twice (paper, hybrid); Whisper's own decoder as reference"
  force_flag=""; [ "$force" = true ] && force_flag="--overwrite"
  ref_dir=exp/whisper-tiny.en-own-decoder/decode-beam$baseline_beams
  [ "$smoke" = true ] && ref_dir=exp/smoke-whisper-own-decoder/decode-beam$baseline_beams
  mkdir -p "$ref_dir"
  # Whisper's own decoder, run by CTranslate2 on the packaged model (the format it ships in;
  # ~2x faster than transformers' generate here; --backend hf runs that instead)
  ct2_dir=$(python -c "from slamasr.converters.ct2_whisper import find_whisper_tiny_en_ct2 as f; print(f())")
  whisper_own_decoder() {  # <test sets> <threads>
    for s in $1; do
      if [ -f "$ref_dir/recogs-$s.txt" ] && [ "$force" != true ]; then continue; fi
      python -m slamasr.bin.whisper_baseline --model-dir "$whisper_dir" --test-set $s \
        --cuts data/manifests/espeak_cuts_$s.jsonl.gz --decode-dir "$ref_dir" \
        --num-beams $baseline_beams --text-norm lower --num-threads "$2" \
        --backend ct2 --ct2-dir "$ct2_dir" > "$ref_dir/log-decode-$s.txt" 2>&1
    done
  }
  baseline_failed() { log "Whisper baseline failed: see $ref_dir/log-decode-*.txt"; exit 1; }
  threads=0
  if [ "$nj" -ge 2 ]; then
    # Two single-thread lanes (no oversubscription): Whisper on both sets in one, ours in the other.
    threads=1
    whisper_own_decoder "test_ood test test_unseen" 1 &
    baseline_pid=$!
  fi
  [ "$threads" = 1 ] && export OMP_NUM_THREADS=1
  # Two lines from one checkpoint: the paper's decoding (the frozen LLM alone, beam search;
  # no CTC, no word prior, no rescoring), then the recipe's hybrid (the conf's decode: section,
  # not in the paper). Each writes its own decode dir; stage 5 scores both.
  paper_decode_opts="--paper"  # every decode.scorers.* / decode.rescorers.* off
  decode_line() {  # <name> <options> [<exp dir>]
    local dir exp=${3:-$exp_dir}
    # shellcheck disable=SC2086
    dir=$(python -m slamasr.bin.decode --exp-dir "$exp" $2 --print-out-dir)
    if [ -f "$dir/recogs-test.txt" ] && [ -f "$dir/recogs-test_ood.txt" ] \
      && [ -f "$dir/recogs-test_unseen.txt" ] && [ "$force" != true ]; then
      log "$1: $dir has recogs; skipping (--force true redoes it)"
      return
    fi
    log "$1 -> $dir"
    # shellcheck disable=SC2086
    python -m slamasr.bin.decode --exp-dir "$exp" $force_flag $2
  }
  decode_line "the paper's decoding" "$decode_opts $paper_decode_opts"
  decode_line "hybrid decoding (not in the paper)" "$decode_opts"
  if [ -n "$lora_exp_dir" ]; then  # the LoRA model read by the LLM alone, beside the paper's line
    decode_line "LoRA: the LLM alone (not in the paper)" "$decode_opts $paper_decode_opts" "$lora_exp_dir"
  fi
  if [ -n "${baseline_pid:-}" ]; then
    wait "$baseline_pid" || baseline_failed
  else
    whisper_own_decoder "test test_ood test_unseen" 0 || baseline_failed
  fi
  log "Whisper's own decoder: $ref_dir (logs: $ref_dir/log-decode-*.txt)"
fi

if [ $stage -le 5 ] && [ $stop_stage -ge 5 ]; then
  log "Stage 5: kaldialign scoring of both lines and the reference -> exp/*/wer"
  ref_exp=exp/whisper-tiny.en-own-decoder
  [ "$smoke" = true ] && ref_exp=exp/smoke-whisper-own-decoder
  wer_files=("$exp_dir/wer" ${lora_exp_dir:+"$lora_exp_dir/wer"} "$ref_exp/wer")
  for d in "$exp_dir"/decode-*/ ${lora_exp_dir:+"$lora_exp_dir"/decode-*/} "$ref_exp"/decode-*/; do
    python -m slamasr.bin.score --exp-dir "$(dirname "$d")" --decode-dir "$d" --text-norm lower
  done
  python "$SLAMASR_ROOT/tools/collect_results.py" "${wer_files[@]}"
  # a dated section (command, commit, configs, every wer column); the smoke run writes its own
  # file so that CI never edits the recipe's RESULTS.md
  results_md=RESULTS.md; [ "$smoke" = true ] && results_md=$exp_dir/RESULTS.md
  secs=$(( $(date +%s) - run_start ))
  existing="--keep-existing"; [ "$force" = true ] && existing="--replace"
  python "$SLAMASR_ROOT/tools/results_md.py" --results "$results_md" --command "$run_command" \
    --wall-time "$((secs / 60)) min $((secs % 60)) s (stages $stage-$stop_stage)" $existing \
    "${wer_files[@]}"
fi
log "Done: stages $stage..$stop_stage"
