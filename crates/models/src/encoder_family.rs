//! The Hugging Face encoder families [`crate::BertClassifier`] loads, picked by
//! `config.json`'s `model_type`, and their heads, picked by `architectures`: what differs
//! between BERT, DistilBERT, RoBERTa / XLM-RoBERTa and ELECTRA is the tensor names, the
//! position ids (RoBERTa counts from `pad_token_id + 1`), token types (none in DistilBERT),
//! ELECTRA's projection of smaller embeddings, and the classification head.

use candle_explain_core::Activation;

/// An encoder family (`config.json`'s `model_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Bert,
    DistilBert,
    Roberta,
    XlmRoberta,
    Electra,
}

/// The supported `model_type`s, for the error that lists them.
pub const MODEL_TYPES: &str = "bert, distilbert, roberta, xlm-roberta, electra";

impl Family {
    pub fn from_model_type(t: &str) -> Option<Self> {
        Some(match t {
            "bert" => Self::Bert,
            "distilbert" => Self::DistilBert,
            "roberta" => Self::Roberta,
            "xlm-roberta" => Self::XlmRoberta,
            "electra" => Self::Electra,
            _ => return None,
        })
    }

    /// The encoder's prefix in a `…For…Classification` checkpoint.
    pub fn prefix(self) -> &'static str {
        match self {
            Self::Bert => "bert",
            Self::DistilBert => "distilbert",
            Self::Roberta | Self::XlmRoberta => "roberta",
            Self::Electra => "electra",
        }
    }

    /// RoBERTa's positions start after the padding index.
    pub fn offsets_positions(self) -> bool {
        matches!(self, Self::Roberta | Self::XlmRoberta)
    }

    pub fn names(self) -> &'static LayerNames {
        match self {
            Self::DistilBert => &DISTILBERT,
            _ => &BERT,
        }
    }

    /// The head of `architectures[0]` (`None`: a bare encoder, e.g. `BertModel`).
    pub fn head(self, architecture: Option<&str>) -> HeadKind {
        if architecture.is_some_and(|a| a.ends_with("ForTokenClassification")) {
            return HeadKind::Token;
        }
        match self {
            Self::Bert => HeadKind::Pooler,
            Self::DistilBert => HeadKind::PreClassifier,
            Self::Roberta | Self::XlmRoberta => HeadKind::Dense(Activation::Tanh),
            Self::Electra => HeadKind::Dense(Activation::Gelu),
        }
    }
}

/// How the logits are made from the encoder's output.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HeadKind {
    /// BERT: `classifier(tanh(pooler.dense(h[CLS])))`.
    Pooler,
    /// RoBERTa (tanh), ELECTRA (GELU): `classifier.out_proj(act(classifier.dense(h[CLS])))`.
    Dense(Activation),
    /// DistilBERT: `classifier(relu(pre_classifier(h[CLS])))`.
    PreClassifier,
    /// Token classification: `classifier(h)` at every token; the outputs are flattened to
    /// `(B, L · labels)`, token `t`'s label `c` at index `t · labels + c`.
    Token,
}

/// Tensor names of one encoder layer, below `layers.{i}`.
pub struct LayerNames {
    pub layers: &'static str,
    pub query: &'static str,
    pub key: &'static str,
    pub value: &'static str,
    pub attention_out: &'static str,
    pub attention_norm: &'static str,
    pub intermediate: &'static str,
    pub output: &'static str,
    pub output_norm: &'static str,
}

static BERT: LayerNames = LayerNames {
    layers: "encoder.layer",
    query: "attention.self.query",
    key: "attention.self.key",
    value: "attention.self.value",
    attention_out: "attention.output.dense",
    attention_norm: "attention.output.LayerNorm",
    intermediate: "intermediate.dense",
    output: "output.dense",
    output_norm: "output.LayerNorm",
};

static DISTILBERT: LayerNames = LayerNames {
    layers: "transformer.layer",
    query: "attention.q_lin",
    key: "attention.k_lin",
    value: "attention.v_lin",
    attention_out: "attention.out_lin",
    attention_norm: "sa_layer_norm",
    intermediate: "ffn.lin1",
    output: "ffn.lin2",
    output_norm: "output_layer_norm",
};
