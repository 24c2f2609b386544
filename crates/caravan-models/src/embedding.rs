//! Sentence embeddings: all-MiniLM-L6-v2 run in-process by candle, from the weights the
//! project's set-up script installs (`scripts/models/install.sh`).
//!
//! The pipeline is the one sentence-transformers publishes for this model: WordPiece tokens
//! (lower-cased, `[CLS] … [SEP]`, at most 256), the six-layer BERT encoder, the mean of the
//! token vectors under the attention mask, then L2 normalisation — so a dot product of two
//! embeddings is their cosine similarity.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use caravan_core::Hash32;
use serde::Deserialize;
use tokenizers::Tokenizer;

/// The embedding model caravan serves, by the name clients ask for.
pub const MINILM: &str = "all-MiniLM-L6-v2";
/// The command that installs the weights, named in every "not installed" error.
pub const INSTALL_COMMAND: &str = "scripts/models/install.sh";
/// Environment variable naming the folder that holds installed models.
pub const MODELS_DIR_VAR: &str = "CARAVAN_MODELS_DIR";
/// Texts embedded in one forward pass: enough to keep both cores busy, small enough that one
/// long text does not pad many short ones to its length for long.
const BATCH: usize = 32;

/// Why an encoder cannot be loaded or cannot embed an input. Messages say what to do.
#[derive(Debug, thiserror::Error)]
pub enum EncoderError {
    #[error(
        "the embedding model is not installed: {path} is missing. Run `{INSTALL_COMMAND} {models}` to install it there, or point --models-dir / {MODELS_DIR_VAR} at a folder that holds {MINILM}",
        path = .0.display(),
        models = .0.parent().unwrap_or(.0).display()
    )]
    NotInstalled(PathBuf),
    #[error("cannot read {path}: {reason}; run `{INSTALL_COMMAND}` again to reinstall the model", path = .path.display())]
    Unreadable { path: PathBuf, reason: String },
    #[error("token id {id} is not in the model's vocabulary (0 to {last}); token ids are {MINILM}'s own WordPiece ids", last = .vocabulary - 1)]
    UnknownToken { id: u32, vocabulary: usize },
    #[error("an input is empty; send at least one character or token")]
    EmptyInput,
    #[error("the tokenizer failed: {0}")]
    Tokenizer(String),
    #[error("the model failed to run: {0}")]
    Model(#[from] candle_core::Error),
}

/// The folder that holds installed models: `$CARAVAN_MODELS_DIR`, else `~/.cache/caravan/models`.
pub fn default_models_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(MODELS_DIR_VAR).filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".cache").join("caravan").join("models")
}

#[derive(Deserialize)]
struct SentenceConfig {
    max_seq_length: usize,
}

#[derive(Deserialize)]
struct PoolingConfig {
    pooling_mode_mean_tokens: bool,
}

/// A loaded sentence encoder. Loading reads ~90 MB of weights; share one per process.
pub struct SentenceEncoder {
    model: BertModel,
    tokenizer: Tokenizer,
    /// Most tokens one input keeps, `[CLS]` and `[SEP]` included; longer inputs are cut, as
    /// sentence-transformers does for this model.
    max_tokens: usize,
    dimensions: usize,
    vocabulary: usize,
    cls: u32,
    sep: u32,
    weights: Hash32,
}

impl std::fmt::Debug for SentenceEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentenceEncoder")
            .field("dimensions", &self.dimensions)
            .field("max_tokens", &self.max_tokens)
            .field("weights", &self.weights)
            .finish()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, EncoderError> {
    std::fs::read(path).map_err(|e| EncoderError::Unreadable {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

fn parse<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, EncoderError> {
    serde_json::from_slice(&read(path)?).map_err(|e| EncoderError::Unreadable {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

impl SentenceEncoder {
    /// Loads all-MiniLM-L6-v2 from the installed models folder.
    pub fn load_installed(models_dir: &Path) -> Result<SentenceEncoder, EncoderError> {
        SentenceEncoder::load(&models_dir.join(MINILM))
    }

    /// Loads a sentence-transformers BERT model from its folder (`model.safetensors`,
    /// `config.json`, `tokenizer.json`, `sentence_bert_config.json`, `1_Pooling/config.json`).
    pub fn load(dir: &Path) -> Result<SentenceEncoder, EncoderError> {
        let weights_path = dir.join("model.safetensors");
        if !weights_path.is_file() {
            return Err(EncoderError::NotInstalled(dir.to_owned()));
        }
        let unreadable = |path: &Path, reason: String| EncoderError::Unreadable {
            path: path.to_owned(),
            reason,
        };
        let config: Config = parse(&dir.join("config.json"))?;
        let sentence: SentenceConfig = parse(&dir.join("sentence_bert_config.json"))?;
        let pooling_path = dir.join("1_Pooling").join("config.json");
        let pooling: PoolingConfig = parse(&pooling_path)?;
        if !pooling.pooling_mode_mean_tokens {
            return Err(unreadable(
                &pooling_path,
                "only mean pooling is supported".into(),
            ));
        }
        let tokenizer_path = dir.join("tokenizer.json");
        let mut tokenizer = Tokenizer::from_bytes(read(&tokenizer_path)?)
            .map_err(|e| unreadable(&tokenizer_path, e.to_string()))?;
        let max_tokens = sentence.max_seq_length.min(config.max_position_embeddings);
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(tokenizers::TruncationParams {
                max_length: max_tokens,
                ..Default::default()
            }))
            .map_err(|e| unreadable(&tokenizer_path, e.to_string()))?;
        let special = |token: &str| {
            tokenizer
                .token_to_id(token)
                .ok_or_else(|| unreadable(&tokenizer_path, format!("no {token} token")))
        };
        let (cls, sep) = (special("[CLS]")?, special("[SEP]")?);
        let bytes = read(&weights_path)?;
        let weights = caravan_core::keccak256(&bytes);
        let vars = VarBuilder::from_buffered_safetensors(bytes, DType::F32, &Device::Cpu)
            .map_err(|e| unreadable(&weights_path, e.to_string()))?;
        let model =
            BertModel::load(vars, &config).map_err(|e| unreadable(&weights_path, e.to_string()))?;
        Ok(SentenceEncoder {
            model,
            tokenizer,
            max_tokens,
            dimensions: config.hidden_size,
            vocabulary: config.vocab_size,
            cls,
            sep,
            weights,
        })
    }

    /// Numbers in one embedding (384 for all-MiniLM-L6-v2).
    pub fn dimensions(&self) -> usize {
        self.dimensions
    }

    /// Most tokens of one input the model reads, `[CLS]` and `[SEP]` included.
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// keccak-256 of the weights file: which weights produced an embedding.
    pub fn weights_hash(&self) -> Hash32 {
        self.weights
    }

    /// The token ids the model reads for `text`: `[CLS]`, WordPiece ids, `[SEP]`, cut to
    /// [`SentenceEncoder::max_tokens`].
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>, EncoderError> {
        if text.is_empty() {
            return Err(EncoderError::EmptyInput);
        }
        let encoding = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| EncoderError::Tokenizer(e.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// The token ids the model reads for a client's own token ids (WordPiece ids of this
    /// model, without special tokens): wrapped in `[CLS]` … `[SEP]` and cut to fit.
    pub fn frame_tokens(&self, ids: &[u32]) -> Result<Vec<u32>, EncoderError> {
        if ids.is_empty() {
            return Err(EncoderError::EmptyInput);
        }
        if let Some(id) = ids.iter().find(|id| **id as usize >= self.vocabulary) {
            return Err(EncoderError::UnknownToken {
                id: *id,
                vocabulary: self.vocabulary,
            });
        }
        let kept = ids.len().min(self.max_tokens - 2);
        let mut framed = Vec::with_capacity(kept + 2);
        framed.push(self.cls);
        framed.extend_from_slice(&ids[..kept]);
        framed.push(self.sep);
        Ok(framed)
    }

    /// Embeds texts; one unit-length vector per text, in order.
    pub fn embed_texts(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EncoderError> {
        let tokens = texts
            .iter()
            .map(|t| self.tokenize(t))
            .collect::<Result<Vec<_>, _>>()?;
        self.embed_tokens(&tokens)
    }

    /// Embeds inputs already tokenised by [`SentenceEncoder::tokenize`] or
    /// [`SentenceEncoder::frame_tokens`]; one unit-length vector per input, in order.
    pub fn embed_tokens(&self, inputs: &[Vec<u32>]) -> Result<Vec<Vec<f32>>, EncoderError> {
        // Sorting by length keeps padding small inside each batch; results go back in order.
        let mut order: Vec<usize> = (0..inputs.len()).collect();
        order.sort_by_key(|i| inputs[*i].len());
        let mut out = vec![Vec::new(); inputs.len()];
        for chunk in order.chunks(BATCH) {
            let batch: Vec<&[u32]> = chunk.iter().map(|i| inputs[*i].as_slice()).collect();
            for (index, vector) in chunk.iter().zip(self.forward(&batch)?) {
                out[*index] = vector;
            }
        }
        Ok(out)
    }

    fn forward(&self, batch: &[&[u32]]) -> Result<Vec<Vec<f32>>, EncoderError> {
        let width = batch.iter().map(|t| t.len()).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(batch.len() * width);
        let mut mask = Vec::with_capacity(batch.len() * width);
        for tokens in batch {
            ids.extend_from_slice(tokens);
            ids.resize(ids.len() + width - tokens.len(), 0);
            mask.extend(std::iter::repeat_n(1u32, tokens.len()));
            mask.resize(mask.len() + width - tokens.len(), 0);
        }
        let shape = (batch.len(), width);
        let ids = Tensor::from_vec(ids, shape, &Device::Cpu)?;
        let mask = Tensor::from_vec(mask, shape, &Device::Cpu)?;
        let types = ids.zeros_like()?;
        let hidden = self.model.forward(&ids, &types, Some(&mask))?;
        // Mean over the real tokens: zero the padding, sum, divide by each input's length.
        let weights = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let summed = hidden.broadcast_mul(&weights)?.sum(1)?;
        let counts = weights.sum(1)?;
        let mean = summed.broadcast_div(&counts)?;
        let norms = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f32::MAX)?;
        Ok(mean.broadcast_div(&norms)?.to_vec2()?)
    }
}
