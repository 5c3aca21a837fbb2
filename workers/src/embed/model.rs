//! A sentence-transformers model directory, loaded for inference: tokenizer, BERT
//! encoder, pooling and normalization, with texts batched by length.
//!
//! Any sentence-transformers directory with `config.json`, `tokenizer.json` and
//! `model.safetensors` works; `sentence_bert_config.json`, `1_Pooling/config.json` and
//! `modules.json` are honoured when present.
//!
//! Tokenization follows sentence-transformers rather than the `tokenizer.json` defaults:
//! truncation at `max_seq_length`, and no fixed padding. Where the CPU has AVX-512 the
//! texts of a batch are packed end to end with no padding at all; elsewhere they are
//! padded to the longest of the batch and masked. Either way vectors do not depend on
//! how texts were batched.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;
use tokenizers::{Tokenizer, TruncationParams, TruncationStrategy};

use super::bert::{BertConfig, BertModel, LinearPrecision, cls_pool, l2_normalize, mean_pool};
use jobmatch_kernels::bf16_linear::PackedLinear;

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("model directory {0}: no {1} (is this a sentence-transformers model directory?)")]
    MissingFile(PathBuf, &'static str),
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parsing {path}: {source}")]
    Config {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("model: {0}")]
    Model(#[from] candle_core::Error),
    #[error("precision {requested} is not available on {device}: {why}")]
    Precision {
        requested: Precision,
        device: &'static str,
        why: &'static str,
    },
}

/// Which code runs the model on CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Kernels {
    /// jobmatch's AVX-512 kernels where the CPU has AVX-512 (packed batches without
    /// padding, bf16 linear layers), candle's ops elsewhere.
    #[default]
    Auto,
    /// candle's ops only, as on a GPU or a CPU without AVX-512 (for comparison and tests).
    Candle,
}

/// The arithmetic the model runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Precision {
    /// bf16 linear layers on a CPU with AVX-512 BF16, else f32 (f32 on GPU).
    #[default]
    Auto,
    /// Full precision: vectors match sentence-transformers to cosine ≥ 0.9999.
    F32,
    /// bf16 products, f32 sums (CPU: needs AVX-512 BF16; GPU: bf16 weights).
    Bf16,
    /// f16 weights and activations (GPU only).
    F16,
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Precision::Auto => "auto",
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
            Precision::F16 => "f16",
        })
    }
}

/// How a requested precision runs on a device: the weights' dtype and the linear layers'
/// arithmetic. Pure, so the choice is tested without the hardware.
pub fn resolve_precision(
    requested: Precision,
    gpu: bool,
    cpu_has_bf16: bool,
) -> Result<(DType, LinearPrecision), EmbedError> {
    let refuse = |why| EmbedError::Precision {
        requested,
        device: if gpu { "GPU" } else { "CPU" },
        why,
    };
    Ok(match (requested, gpu) {
        (Precision::F32, _) | (Precision::Auto, true) => (DType::F32, LinearPrecision::Native),
        (Precision::Bf16, true) => (DType::BF16, LinearPrecision::Native),
        (Precision::F16, true) => (DType::F16, LinearPrecision::Native),
        (Precision::F16, false) => return Err(refuse("f16 runs on GPU only; use bf16 or f32")),
        (Precision::Bf16 | Precision::Auto, false) if cpu_has_bf16 => {
            (DType::F32, LinearPrecision::Bf16)
        }
        (Precision::Bf16, false) => {
            return Err(refuse(
                "this CPU lacks the AVX-512 BF16 instructions; use f32",
            ));
        }
        (Precision::Auto, false) => (DType::F32, LinearPrecision::Native),
    })
}

/// How token states become one vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    Mean,
    Cls,
}

/// Batch shaping: the most texts in one forward pass, and the most padded tokens.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    pub max_texts: usize,
    pub max_tokens: usize,
}

impl BatchLimits {
    /// How many of these texts, taken in order, make one batch: at most `max_texts`,
    /// at most `max_tokens` tokens in all, and always at least one.
    pub fn leading_fit(&self, lengths: impl IntoIterator<Item = usize>) -> usize {
        let mut taken = 0;
        let mut tokens = 0;
        for len in lengths {
            if taken > 0 && (taken >= self.max_texts || tokens + len > self.max_tokens) {
                break;
            }
            tokens += len;
            taken += 1;
        }
        taken
    }
}

impl Default for BatchLimits {
    fn default() -> Self {
        Self {
            max_texts: 32,
            max_tokens: 4096,
        }
    }
}

/// One text's token ids, and whether it was cut at the model's limit.
#[derive(Debug, Clone)]
pub struct Tokenized {
    pub ids: Vec<u32>,
    pub truncated: bool,
    /// What was cut off, in pieces of the same limit (special tokens included), each
    /// beginning [`CHUNK_OVERLAP`] tokens before the previous one ends: an overlong text
    /// embedded whole is embedded piece by piece (see `Overlong::Chunk`).
    pub rest: Vec<Vec<u32>>,
}

/// Tokens each piece of an overlong text repeats from the one before, so a sentence
/// cut between two pieces is read whole in one of them.
pub const CHUNK_OVERLAP: usize = 32;

/// Vectors in input order, with what it took.
#[derive(Debug, Default)]
pub struct Embeddings {
    pub vectors: Vec<Vec<f32>>,
    /// Texts cut at the model's token limit.
    pub truncated: usize,
    /// Tokens embedded (after truncation, special tokens included).
    pub tokens: usize,
}

pub struct SentenceEmbedder {
    model: BertModel,
    tokenizer: Tokenizer,
    pooling: Pooling,
    normalize: bool,
    max_seq_len: usize,
    dimension: usize,
    limits: BatchLimits,
    precision: &'static str,
    identity: String,
}

#[derive(Deserialize)]
struct SentenceBertConfig {
    max_seq_length: Option<usize>,
}

#[derive(Deserialize)]
struct PoolingConfig {
    #[serde(default)]
    pooling_mode_cls_token: bool,
}

#[derive(Deserialize)]
struct ModuleEntry {
    #[serde(rename = "type")]
    kind: String,
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, EmbedError> {
    let text = std::fs::read_to_string(path).map_err(|source| EmbedError::Io {
        path: path.to_owned(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| EmbedError::Config {
        path: path.to_owned(),
        source,
    })
}

fn model_identity(config: &Path, weights: &Path) -> Result<String, EmbedError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| EmbedError::Io { path, source }
    };
    let config_bytes = std::fs::read(config).map_err(io(config))?;
    let weights_len = std::fs::metadata(weights).map_err(io(weights))?.len();
    Ok(jobmatch_core::ids::digest_hex(&[
        &config_bytes,
        &weights_len.to_le_bytes(),
    ]))
}

fn read_optional_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>, EmbedError> {
    if path.exists() {
        read_json(path).map(Some)
    } else {
        Ok(None)
    }
}

impl SentenceEmbedder {
    /// Loads a model directory onto the GPU when one is built in and present, else the CPU.
    pub fn load(dir: &Path, precision: Precision, kernels: Kernels) -> Result<Self, EmbedError> {
        let device = Device::cuda_if_available(0)?;
        Self::load_on(dir, &device, precision, kernels)
    }

    pub fn load_on(
        dir: &Path,
        device: &Device,
        precision: Precision,
        kernels: Kernels,
    ) -> Result<Self, EmbedError> {
        if kernels == Kernels::Candle && device.is_cpu() && precision == Precision::Bf16 {
            return Err(EmbedError::Precision {
                requested: precision,
                device: "CPU",
                why: "bf16 on CPU needs jobmatch's kernels, which --embed-kernels candle turns off",
            });
        }
        let own_kernels = kernels == Kernels::Auto;
        let (dtype, linear) = resolve_precision(
            precision,
            !device.is_cpu(),
            own_kernels && PackedLinear::supported(),
        )?;
        let required = |name: &'static str| -> Result<PathBuf, EmbedError> {
            let path = dir.join(name);
            if path.is_file() {
                Ok(path)
            } else {
                Err(EmbedError::MissingFile(dir.to_owned(), name))
            }
        };
        let config_path = required("config.json")?;
        let config: BertConfig = read_json(&config_path)?;
        let weights = required("model.safetensors")?;
        let identity = model_identity(&config_path, &weights)?;
        let mut tokenizer = Tokenizer::from_file(required("tokenizer.json")?)
            .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;

        let st_max =
            read_optional_json::<SentenceBertConfig>(&dir.join("sentence_bert_config.json"))?
                .and_then(|c| c.max_seq_length);
        let max_seq_len = st_max
            .unwrap_or(config.max_position_embeddings)
            .min(config.max_position_embeddings);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_seq_len,
                strategy: TruncationStrategy::LongestFirst,
                stride: CHUNK_OVERLAP.min(max_seq_len / 4),
                ..Default::default()
            }))
            .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        // Padding is done per batch below, to the longest text in it.
        tokenizer.with_padding(None);

        let pooling = match read_optional_json::<PoolingConfig>(&dir.join("1_Pooling/config.json"))?
        {
            Some(p) if p.pooling_mode_cls_token => Pooling::Cls,
            _ => Pooling::Mean,
        };
        let normalize = match read_optional_json::<Vec<ModuleEntry>>(&dir.join("modules.json"))? {
            Some(modules) => modules.iter().any(|m| m.kind.ends_with(".Normalize")),
            None => true,
        };

        // SAFETY: the weights file is memory-mapped read-only; candle copies what it
        // needs and the file is not modified while the model lives.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[weights], dtype, device)? };
        let model = BertModel::load(vb, &config, linear, own_kernels)?;
        Ok(Self {
            model,
            tokenizer,
            pooling,
            normalize,
            max_seq_len,
            dimension: config.hidden_size,
            limits: BatchLimits::default(),
            identity,
            precision: match (dtype, linear) {
                (_, LinearPrecision::Bf16) | (DType::BF16, _) => "bf16",
                (DType::F16, _) => "f16",
                _ => "f32",
            },
        })
    }

    pub fn with_limits(mut self, limits: BatchLimits) -> Self {
        self.limits = limits;
        self
    }

    pub fn limits(&self) -> BatchLimits {
        self.limits
    }

    /// Length of each vector.
    /// Names the model's weights (a digest of its configuration and weights' size): the
    /// same text embedded by the same model gives the same vector, so vectors cached under
    /// this name stay valid until the model changes.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    pub fn dimension(&self) -> usize {
        self.dimension
    }

    /// Tokens per text, beyond which texts are truncated.
    pub fn max_seq_len(&self) -> usize {
        self.max_seq_len
    }

    pub fn device(&self) -> &Device {
        self.model.device()
    }

    /// The precision it runs in: `f32`, `bf16` or `f16`.
    pub fn precision(&self) -> &'static str {
        self.precision
    }

    /// Tokens the model reads for these texts: after truncation, special tokens included.
    pub fn count_tokens<S: AsRef<str>>(&self, texts: &[S]) -> Result<usize, EmbedError> {
        Ok(self.tokenize(texts)?.iter().map(|t| t.ids.len()).sum())
    }

    /// Token ids of each text, cut at the model's limit.
    pub fn tokenize<S: AsRef<str>>(&self, texts: &[S]) -> Result<Vec<Tokenized>, EmbedError> {
        let inputs: Vec<&str> = texts.iter().map(AsRef::as_ref).collect();
        let encodings = self
            .tokenizer
            .encode_batch(inputs, true)
            .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        Ok(encodings
            .into_iter()
            .map(|e| Tokenized {
                truncated: !e.get_overflowing().is_empty(),
                ids: e.get_ids().to_vec(),
                rest: e
                    .get_overflowing()
                    .iter()
                    .map(|piece| piece.get_ids().to_vec())
                    .collect(),
            })
            .collect())
    }

    /// Embeds texts, returning one vector per text in input order.
    pub fn embed<S: AsRef<str>>(&self, texts: &[S]) -> Result<Embeddings, EmbedError> {
        let tokenized = self.tokenize(texts)?;
        let truncated = tokenized.iter().filter(|t| t.truncated).count();
        let ids: Vec<&[u32]> = tokenized.iter().map(|t| t.ids.as_slice()).collect();
        let tokens = ids.iter().map(|t| t.len()).sum();
        let vectors = self.embed_tokenized(&ids)?;
        Ok(Embeddings {
            vectors,
            truncated,
            tokens,
        })
    }

    /// Embeds tokenized texts, one vector each in input order. Texts are sorted by
    /// length and cut into batches of at most `max_texts` texts and `max_tokens` padded
    /// tokens, so that little is spent on padding; padding never changes a vector.
    pub fn embed_tokenized(&self, texts: &[&[u32]]) -> Result<Vec<Vec<f32>>, EmbedError> {
        // Longest first: batches of similar lengths waste little on padding.
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(texts[i].len()));

        let packs = self.model.packs();
        let mut vectors = vec![Vec::new(); texts.len()];
        let mut start = 0;
        while start < order.len() {
            let longest = texts[order[start]].len().max(1);
            let end = if packs {
                // No padding: the budget counts real tokens.
                let lengths = order[start..].iter().map(|&i| texts[i].len());
                start + self.limits.leading_fit(lengths)
            } else {
                let fit = (self.limits.max_tokens / longest).clamp(1, self.limits.max_texts);
                (start + fit).min(order.len())
            };
            let batch = &order[start..end];
            let rows = if packs {
                self.forward_packed(batch.iter().map(|&i| texts[i]))?
            } else {
                self.forward(batch.iter().map(|&i| texts[i]), longest)?
            };
            for (&i, row) in batch.iter().zip(rows) {
                vectors[i] = row;
            }
            start = end;
        }
        Ok(vectors)
    }

    /// One forward pass over texts laid end to end, without padding.
    fn forward_packed<'a>(
        &self,
        texts: impl Iterator<Item = &'a [u32]>,
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut ids = Vec::new();
        let mut lengths = Vec::new();
        for text in texts {
            ids.extend_from_slice(text);
            lengths.push(text.len());
        }
        let hidden = self.model.forward_packed(&ids, &lengths)?;
        let mut pooled = Vec::with_capacity(lengths.len());
        let mut offset = 0;
        for &len in &lengths {
            let rows = hidden.narrow(0, offset, len.max(1))?;
            pooled.push(match self.pooling {
                Pooling::Mean => rows.mean(0)?,
                Pooling::Cls => rows.get(0)?,
            });
            offset += len;
        }
        let pooled = Tensor::stack(&pooled, 0)?;
        let pooled = if self.normalize {
            l2_normalize(&pooled)?
        } else {
            pooled
        };
        Ok(pooled.to_vec2()?)
    }

    /// One forward pass over texts padded to `seq` tokens.
    fn forward<'a>(
        &self,
        texts: impl ExactSizeIterator<Item = &'a [u32]>,
        seq: usize,
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        let batch = texts.len();
        let mut ids = vec![0u32; batch * seq];
        let mut mask = vec![0u32; batch * seq];
        for (row, text) in texts.enumerate() {
            ids[row * seq..row * seq + text.len()].copy_from_slice(text);
            mask[row * seq..row * seq + text.len()].fill(1);
        }
        let device = self.model.device();
        let ids = Tensor::from_vec(ids, (batch, seq), device)?;
        let mask = Tensor::from_vec(mask, (batch, seq), device)?;
        let hidden = self.model.forward(&ids, &mask)?.to_dtype(DType::F32)?;
        let pooled = match self.pooling {
            Pooling::Mean => mean_pool(&hidden, &mask)?,
            Pooling::Cls => cls_pool(&hidden)?,
        };
        let pooled = if self.normalize {
            l2_normalize(&pooled)?
        } else {
            pooled
        };
        Ok(pooled.to_dtype(DType::F32)?.to_vec2()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_fill_up_to_either_limit_and_take_at_least_one() {
        let limits = BatchLimits {
            max_texts: 3,
            max_tokens: 100,
        };
        assert_eq!(limits.leading_fit([10, 10, 10, 10]), 3, "text limit");
        assert_eq!(limits.leading_fit([60, 30, 20]), 2, "token limit");
        assert_eq!(
            limits.leading_fit([60, 40, 1]),
            2,
            "exactly the budget fits"
        );
        assert_eq!(
            limits.leading_fit([500, 1]),
            1,
            "an oversized text goes alone"
        );
        assert_eq!(limits.leading_fit(std::iter::empty()), 0);
    }

    #[test]
    fn precision_resolves_per_device_and_refuses_with_the_reason() {
        use Precision::*;
        let cpu = |p, bf16| resolve_precision(p, false, bf16);
        assert!(matches!(
            cpu(Auto, true),
            Ok((DType::F32, LinearPrecision::Bf16))
        ));
        assert!(matches!(
            cpu(Auto, false),
            Ok((DType::F32, LinearPrecision::Native))
        ));
        assert!(matches!(
            cpu(F32, true),
            Ok((DType::F32, LinearPrecision::Native))
        ));
        let err = cpu(Bf16, false).expect_err("no AVX-512 BF16");
        assert!(err.to_string().contains("lacks the AVX-512 BF16"), "{err}");
        let err = cpu(F16, true).expect_err("f16 on CPU");
        assert!(err.to_string().contains("f16 runs on GPU only"), "{err}");
        let gpu = |p| resolve_precision(p, true, false);
        assert!(matches!(gpu(Auto), Ok((DType::F32, _))));
        assert!(matches!(
            gpu(Bf16),
            Ok((DType::BF16, LinearPrecision::Native))
        ));
        assert!(matches!(
            gpu(F16),
            Ok((DType::F16, LinearPrecision::Native))
        ));
    }
}
