"""Model configuration: encoder, projector, LLM and prompt template (the ``model:`` section)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

ENCODERS = ("whisper", "hubert", "wavlm", "wav2vec2", "fbank")
PROJECTORS = ("mlp", "linear")
PROJECTOR_OUTPUT_NORMS = ("none", "rms", "rms_fixed")
TEMPLATES = ("plain", "chat", "slam_llm")
ENCODER_AUTOCAST = ("", "float32", "bfloat16", "float16")
CHAR_ALPHABET = " 'abcdefghijklmnopqrstuvwxyz"  # letters, apostrophe, space


@dataclass
class EncoderConfig:
    """Speech encoder (``model.encoder``).

    Attributes:
        name: one of whisper|hubert|wavlm|wav2vec2|fbank.
        path: Hugging Face id or local directory ("" for fbank).
        freeze: keep the encoder frozen (paper default); false fine-tunes it (Table 7).
        whisper_pad_to_30s: pad log-mel input with Whisper's silence value as Whisper was
            trained (paper); the window is ``whisper_pad_window_s``.
        whisper_pad_window_s: padding window in seconds: each utterance is padded to the next
            multiple of it (at most 30 s). 30 = paper and Whisper's training; a shorter window
            runs the encoder several times faster on short utterances, at the price of frames
            that differ a little from 30-s padding. Only with ``whisper_pad_to_30s``.
        whisper_trim_output: cut encoder output to the real length ceil(frames/2) before the
            projector (default); false keeps all 1500 frames (paper-exact, slower).
        normalize_waveform: SSL encoders: zero-mean/unit-var each waveform; None = take it
            from the checkpoint's feature-extractor config.
        feature_dim: input dim for ``fbank`` (no encoder).
        dtype: encoder compute dtype: auto|float32|bfloat16|float16.
        autocast: "" (default) = the encoder runs under whatever autocast training and
            decoding use (``train.dtype``); float16|bfloat16 = its own autocast in that dtype,
            float32 = none. ``dtype: float32`` + ``autocast: float16`` is the official
            SLAM-ASR code's precision (fp32 weights under fp16 autocast); see
            docs/benchmark.md "Encoder precision".
    """

    name: str = "whisper"
    path: str = ""
    freeze: bool = True
    whisper_pad_to_30s: bool = True
    whisper_pad_window_s: float = 30.0
    whisper_trim_output: bool = True
    normalize_waveform: Optional[bool] = None
    feature_dim: int = 80
    dtype: str = "auto"
    autocast: str = ""

    def validate(self) -> None:
        if self.autocast not in ENCODER_AUTOCAST:
            raise ValueError(
                f"model.encoder.autocast={self.autocast!r}; choose one of "
                f"{list(ENCODER_AUTOCAST)} ('' = follow train.dtype)"
            )
        if self.name not in ENCODERS:
            raise ValueError(
                f"model.encoder.name={self.name!r} is not known; choose one of {list(ENCODERS)}"
            )
        if not 0.0 < self.whisper_pad_window_s <= 30.0:
            raise ValueError(
                f"model.encoder.whisper_pad_window_s={self.whisper_pad_window_s} must be in "
                "(0, 30] seconds"
            )
        if self.name != "fbank" and not self.path:
            raise ValueError(
                f"model.encoder.path is empty; give a Hugging Face id or local dir for "
                f"the {self.name} encoder"
            )


@dataclass
class ProjectorConfig:
    """Downsampler + projector (``model.projector``): concat k frames, then MLP or linear.

    Attributes:
        name: mlp (Linear-ReLU-Linear, the paper) | linear.
        downsample_rate: k, frames concatenated per LLM position.
        hidden_dim: width of the MLP's hidden layer.
        output_norm: none (the paper) | rms: RMS-normalise each projected vector, then scale
            it by a learned per-channel gain that starts at the RMS of the LLM's own token
            embeddings, so speech positions enter the LLM at the scale of text | rms_fixed:
            the same with the gain frozen at that value.
        ctc_weight: weight of an auxiliary CTC loss on the projector's output, scored by
            cosine against the frozen LLM's token embeddings (``slamasr.models.ctc``; not
            in the paper); 0 = off (the paper). Adds a learned blank vector and logit scale
            to the trained parameters. See also ``train.ctc_only_steps``.
        ctc_classes: 0 = the CTC loss scores the whole vocabulary; N = only the batch's
            target tokens plus random other tokens, N classes in all (sampled softmax, for
            speed).
    """

    name: str = "mlp"
    downsample_rate: int = 5
    hidden_dim: int = 2048
    output_norm: str = "none"
    ctc_weight: float = 0.0
    ctc_classes: int = 0

    def validate(self) -> None:
        if self.name not in PROJECTORS:
            raise ValueError(
                f"model.projector.name={self.name!r}; choose one of {list(PROJECTORS)}"
            )
        if self.downsample_rate < 1 or self.hidden_dim < 1:
            raise ValueError("model.projector.downsample_rate and hidden_dim must be >= 1")
        if not self.ctc_weight >= 0:
            raise ValueError(
                f"model.projector.ctc_weight={self.ctc_weight}; must be >= 0 (0 = off)"
            )
        if self.ctc_classes < 0:
            raise ValueError(
                f"model.projector.ctc_classes={self.ctc_classes}; must be >= 0 (0 = all tokens)"
            )
        if self.output_norm not in PROJECTOR_OUTPUT_NORMS:
            raise ValueError(
                f"model.projector.output_norm={self.output_norm!r}; choose one of "
                f"{list(PROJECTOR_OUTPUT_NORMS)}"
            )


@dataclass
class CharCTCConfig:
    """A character CTC head on the encoder's frames (``model.char_ctc``; not in the paper).

    Trained beside the projector (its own parameters, the same batches); decoding can score
    hypotheses with it (``decode.scorers.ctc.head: char``) instead of the projector's token head, so
    words whose tokens never occur in training can still be spelled
    (``slamasr.models.ctc.CharCTCHead``).

    Attributes:
        weight: weight of its CTC loss beside the LLM loss; 0 = no head (the paper).
        alphabet: its characters; one case only = transcripts and LLM tokens are case-folded
            to it. The default fits ``data.text_norm`` lower or upper (letters, apostrophe,
            space).
        hidden_dim: width of its hidden layers.
        num_layers: hidden layers (Linear-ReLU).
        context: encoder frames on each side stacked with each frame.
    """

    weight: float = 0.0
    alphabet: str = CHAR_ALPHABET
    hidden_dim: int = 1024
    num_layers: int = 2
    context: int = 1

    def validate(self) -> None:
        if not self.weight >= 0:
            raise ValueError(f"model.char_ctc.weight={self.weight}; must be >= 0 (0 = off)")
        if not self.alphabet or len(set(self.alphabet)) != len(self.alphabet):
            raise ValueError(
                f"model.char_ctc.alphabet={self.alphabet!r} is empty or repeats a character"
            )
        if " " not in self.alphabet:
            raise ValueError(
                f"model.char_ctc.alphabet={self.alphabet!r} has no space: words could not be "
                "told apart; add ' '"
            )
        if self.hidden_dim < 1 or self.num_layers < 0 or self.context < 0:
            raise ValueError("model.char_ctc: hidden_dim must be >= 1, num_layers and context >= 0")


@dataclass
class LLMConfig:
    """The frozen LLM (``model.llm``).

    Attributes:
        path: Hugging Face id or local dir of an AutoModelForCausalLM + tokenizer.
        gguf_file: load weights from this GGUF file inside ``path`` (dequantized).
        dtype: auto (bf16 on GPU, fp32 on CPU) | float32 | bfloat16 | float16.
        trust_remote_code: run code shipped in the model repo (off unless asked for).
        attn_implementation: sdpa|eager|flash_attention_2 or "" for the library default.
        add_bos: put the tokenizer's BOS token first in the plain template; None = do what
            the tokenizer does by default (``tokenizer("a")`` starts with BOS).  The chat
            template adds BOS itself when its template says so.
    """

    path: str = ""
    gguf_file: str = ""
    dtype: str = "auto"
    trust_remote_code: bool = False
    attn_implementation: str = ""
    add_bos: Optional[bool] = None

    def validate(self) -> None:
        if not self.path:
            raise ValueError("model.llm.path is empty; give a Hugging Face id or local dir")


@dataclass
class PromptConfig:
    """Prompt template (``model.prompt``), paper Table 10.

    ``template: plain`` builds ``{user_prefix}<speech>{separator}<prompt>{assistant_prefix}``
    followed by the transcript and EOS.  ``template: chat`` uses the tokenizer's chat template
    (for instruction-tuned LLMs), with ``system`` as the explicit system message.
    ``template: slam_llm`` is the official SLAM-LLM code's layout: ``<speech>[BOS]"USER: <prompt>
    \\n ASSISTANT:"<transcript>`` (``slamasr.models.llm``).  ``joint_tokenization`` (default)
    tokenizes the pieces as the joined text tokenizes; false = each piece on its own, the
    behaviour before (stray whitespace tokens with SentencePiece and GPT-2 BPE tokenizers).
    ``mode``: short|none|long|random|custom. ``random`` draws one of ``library`` per utterance
    (an empty ``library`` means the 10 built-in prompts of ``slamasr.models.llm``); ``custom``
    and ``short`` use ``text``, ``long`` uses ``long_text``.
    """

    template: str = "plain"
    mode: str = "short"
    text: str = "Transcribe speech to text."
    long_text: str = (
        "Transcribe the following speech into text. Write every spoken word exactly, "
        "in order, without adding or leaving out anything."
    )
    library: list[str] = field(default_factory=list)
    user_prefix: str = "USER: "
    separator: str = " "
    assistant_prefix: str = " ASSISTANT: "
    system: str = ""
    joint_tokenization: bool = True

    def validate(self) -> None:
        if self.template not in TEMPLATES:
            raise ValueError(f"model.prompt.template={self.template!r}; choose {list(TEMPLATES)}")
        modes = ("short", "none", "long", "random", "custom")
        if self.mode not in modes:
            raise ValueError(f"model.prompt.mode={self.mode!r}; choose one of {list(modes)}")


@dataclass
class LoRAConfig:
    """LoRA adapters on the frozen LLM (``model.lora``; not in the paper, which trains the
    projector alone and argues LoRA is not needed).

    Low-rank adapters ``W x + (alpha / rank) * B A x`` are injected into the LLM's linear
    layers named in ``target_modules`` (``slamasr.models.lora``, with the ``peft`` library);
    only A and B train, the LLM's own weights stay frozen. B starts at zero, so a fresh
    adapter leaves the LLM's output unchanged. The adapters are saved, resumed, averaged
    (``decode.avg``) and loaded for decoding with the projector. The official SLAM-LLM code
    offers the same (``use_peft``: rank 8, alpha 32 on q_proj, v_proj).

    There is no adapter dropout: the frozen LLM stays in eval mode while training
    (``SlamASR.train``), so dropout inside it would never be active.

    Attributes:
        rank: r, the adapters' rank; 0 = no adapters (the paper; the default).
        alpha: scale numerator: the adapter's output is multiplied by alpha / rank.
        target_modules: names of the LLM's linear layers to adapt (the last part of the
            module name, e.g. q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj
            for LLaMA-style models).
    """

    rank: int = 0
    alpha: float = 16.0
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])

    def validate(self) -> None:
        if self.rank < 0:
            raise ValueError(f"model.lora.rank={self.rank}; must be >= 0 (0 = no LoRA)")
        if not self.alpha > 0:
            raise ValueError(f"model.lora.alpha={self.alpha}; must be > 0")
        if self.rank > 0 and (not self.target_modules or not all(self.target_modules)):
            raise ValueError(
                f"model.lora.target_modules={self.target_modules!r}: with model.lora.rank > 0 "
                "name the LLM layers to adapt, e.g. [q_proj, v_proj]"
            )


@dataclass
class ModelConfig:
    """The ``model:`` section."""

    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    projector: ProjectorConfig = field(default_factory=ProjectorConfig)
    llm: LLMConfig = field(default_factory=LLMConfig)
    prompt: PromptConfig = field(default_factory=PromptConfig)
    char_ctc: CharCTCConfig = field(default_factory=CharCTCConfig)
    lora: LoRAConfig = field(default_factory=LoRAConfig)

    def validate(self) -> None:
        parts = (self.encoder, self.projector, self.llm, self.prompt, self.char_ctc, self.lora)
        for part in parts:
            part.validate()
