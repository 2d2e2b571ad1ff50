"""slamasr: LLM-based speech recognition (SLAM-ASR) recipes."""

__version__ = "0.1.0"
