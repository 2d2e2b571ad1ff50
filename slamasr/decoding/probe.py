"""``decode.search=ctc``: a probe of a CTC head, not SLAM-ASR decoding (the LLM is not run):
the best path of the head of ``decode.scorers.ctc.head``, as LLM token ids."""

from __future__ import annotations

from typing import Any

from slamasr.decoding.scorers.ctc import require_char_head


def ctc_probe_ids(model: Any, batch: dict[str, Any], head: str) -> list[list[int]]:
    """Token ids of each utterance's best CTC path: the projector's token head (``token``),
    or the character head's text tokenized (``char``)."""
    if head == "char":
        require_char_head(model)
        texts = model.char_ctc.greedy(*model.encode(batch))
        return [model.tokenizer.encode(t, add_special_tokens=False) for t in texts]
    if model.projector.ctc is None:
        raise ValueError(
            "search=ctc reads the projector's CTC head, but this model has none "
            "(model.projector.ctc_weight=0)"
        )
    speech, lengths = model.embed_speech(batch)
    embedding = model.llm.get_input_embeddings().weight
    return model.projector.ctc.greedy(speech, lengths, embedding)
