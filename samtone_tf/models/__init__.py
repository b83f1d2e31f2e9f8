"""The dual encoder (:class:`DualEncoder`), its architectures (SDE, ADE, ADE-STE,
ADE-FTE, ADE-SPL) and the backbone specs that make its towers (from scratch, a Hugging
Face BERT, XLM-RoBERTa, Gemma 3 or Qwen 3 folder, a keras-hub preset, all-MiniLM-L6-v2)."""

from samtone_tf.models.architectures import ARCHITECTURES, build_towers
from samtone_tf.models.backbones import HFBert, KerasHubBert, get_backbone, minilm, minilm_path
from samtone_tf.models.scratch import SmallTransformer, T5Encoder
from samtone_tf.models.gemma3 import HFGemma3
from samtone_tf.models.qwen3 import HFQwen3
from samtone_tf.models.spec import BackboneSpec
from samtone_tf.models.xlm_roberta import HFXLMRoberta
from samtone_tf.models.dual_encoder import DualEncoder

__all__ = ["ARCHITECTURES", "BackboneSpec", "DualEncoder", "HFBert", "HFGemma3", "HFQwen3",
           "HFXLMRoberta",
           "KerasHubBert",
           "SmallTransformer", "T5Encoder", "build_towers", "get_backbone", "minilm",
           "minilm_path"]

from samtone_tf.registration import register_pending  # noqa: E402

register_pending()  # the other Keras classes, if Keras was first imported from here
