//! A BERT encoder (the architecture behind all-MiniLM and most sentence-transformers)
//! on candle, inference only.
//!
//! Two forms: padded (`forward`: token ids and attention mask `[batch, seq]` → last
//! hidden state `[batch, seq, hidden]`, candle's ops on any device) and packed
//! (`forward_packed`: sequences end to end `[tokens]` → `[tokens, hidden]`, on a CPU with
//! AVX-512, with `jobmatch-kernels` for attention and, in bf16, the linear layers).
//! Weight names follow Hugging Face's `BertModel`, with or without the `bert.` prefix.

use candle_core::{D, DType, Device, Module, Result, Storage, Tensor};
use candle_nn::{Embedding, LayerNorm, Linear, VarBuilder, embedding, layer_norm, linear};
use serde::Deserialize;

use jobmatch_kernels::bf16_linear::PackedLinear;
use jobmatch_kernels::{attention, fastmath};

/// Attention scores held at once on candle's path, in floats (`sequences × heads ×
/// seq²`): 32 MiB. Larger batches are attended a slice of sequences at a time. Smaller
/// slices measured slower (per-call overhead outweighs the cache misses).
const ATTENTION_SCORES_BUDGET: usize = 8 << 20;

/// Arithmetic of the linear layers (the bulk of the work).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinearPrecision {
    /// candle's matmul in the weights' dtype.
    Native,
    /// bf16 products accumulated in f32 (AVX-512 BF16 on CPU).
    Bf16,
}

/// A linear layer: candle's, or packed for the bf16 CPU kernel.
enum Dense {
    Candle(Linear),
    Bf16(PackedLinear),
}

impl Dense {
    fn new(linear: Linear, precision: LinearPrecision) -> Result<Self> {
        Ok(match precision {
            LinearPrecision::Native => Dense::Candle(linear),
            LinearPrecision::Bf16 => {
                let (n, k) = linear.weight().dims2()?;
                let weight = linear.weight().flatten_all()?.to_vec1::<f32>()?;
                let bias = match linear.bias() {
                    Some(b) => b.to_vec1::<f32>()?,
                    None => vec![0.0; n],
                };
                Dense::Bf16(PackedLinear::pack(&weight, &bias, n, k))
            }
        })
    }

    /// `[.., k]` → `[.., n]`, then GELU if `gelu`.
    fn forward(&self, x: &Tensor, gelu: bool) -> Result<Tensor> {
        match self {
            Dense::Candle(linear) if gelu && x.device().is_cpu() => {
                map_cpu_f32(&linear.forward(x)?, |y| {
                    let mut y = y.to_vec();
                    fastmath::gelu_in_place(&mut y);
                    y
                })
            }
            Dense::Candle(linear) if gelu => linear.forward(x)?.gelu_erf(),
            Dense::Candle(linear) => linear.forward(x),
            Dense::Bf16(packed) => {
                let x = x.contiguous()?;
                let out = with_cpu_f32(&x, |data| packed.forward(data, gelu))?;
                let mut shape = x.dims().to_vec();
                if let Some(last) = shape.last_mut() {
                    *last = packed.out_features();
                }
                Tensor::from_vec(out, shape, x.device())
            }
        }
    }
}

/// Runs `f` on the data of a contiguous f32 CPU tensor, without copying it.
fn with_cpu_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    if !t.is_contiguous() {
        candle_core::bail!("expected a contiguous tensor");
    }
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        candle_core::bail!("expected a CPU tensor");
    };
    let start = layout.start_offset();
    Ok(f(&cpu.as_slice::<f32>()?[start..start + t.elem_count()]))
}

/// A tensor of `t`'s shape holding `f` of its data (contiguous f32 on CPU).
fn map_cpu_f32(t: &Tensor, f: impl FnOnce(&[f32]) -> Vec<f32>) -> Result<Tensor> {
    let t = t.contiguous()?;
    let data = with_cpu_f32(&t, f)?;
    Tensor::from_vec(data, t.shape(), t.device())
}

/// Query, key and value projections as one `[3h, h]` layer: one pass over the input.
fn fused_qkv(vb: VarBuilder, h: usize) -> Result<Linear> {
    let parts = ["query", "key", "value"]
        .iter()
        .map(|name| linear(h, h, vb.pp(*name)))
        .collect::<Result<Vec<_>>>()?;
    let weight = Tensor::cat(&parts.iter().map(|l| l.weight()).collect::<Vec<_>>(), 0)?;
    let bias = parts
        .iter()
        .map(|l| l.bias().cloned())
        .collect::<Option<Vec<_>>>()
        .map(|b| Tensor::cat(&b, 0))
        .transpose()?;
    Ok(Linear::new(weight, bias))
}

/// The fields of a Hugging Face `config.json` that the encoder needs.
#[derive(Debug, Clone, Deserialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab_size")]
    pub type_vocab_size: usize,
    #[serde(default = "default_layer_norm_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "default_hidden_act")]
    pub hidden_act: String,
}

fn default_type_vocab_size() -> usize {
    2
}
fn default_layer_norm_eps() -> f64 {
    1e-12
}
fn default_hidden_act() -> String {
    "gelu".into()
}

struct Embeddings {
    words: Embedding,
    positions: Embedding,
    token_types: Embedding,
    norm: LayerNorm,
}

impl Embeddings {
    fn load(vb: VarBuilder, c: &BertConfig) -> Result<Self> {
        Ok(Self {
            words: embedding(c.vocab_size, c.hidden_size, vb.pp("word_embeddings"))?,
            positions: embedding(
                c.max_position_embeddings,
                c.hidden_size,
                vb.pp("position_embeddings"),
            )?,
            token_types: embedding(
                c.type_vocab_size,
                c.hidden_size,
                vb.pp("token_type_embeddings"),
            )?,
            norm: layer_norm(c.hidden_size, c.layer_norm_eps, vb.pp("LayerNorm"))?,
        })
    }

    /// `ids` is `[batch, seq]`, or `[tokens]` with `positions` of each.
    fn forward(&self, ids: &Tensor, positions: Option<&Tensor>) -> Result<Tensor> {
        let positions = match positions {
            Some(p) => p.clone(),
            None => Tensor::arange(0u32, ids.dim(D::Minus1)? as u32, ids.device())?,
        };
        let words = self.words.forward(ids)?;
        let positions = self.positions.forward(&positions)?;
        // Single-segment input: every token type is 0, so its embedding is one row.
        let token_type = self.token_types.embeddings().get(0)?;
        let x = words
            .broadcast_add(&positions)?
            .broadcast_add(&token_type)?;
        self.norm.forward(&x)
    }
}

struct Layer {
    qkv: Dense,
    attention_out: Dense,
    attention_norm: LayerNorm,
    intermediate: Dense,
    output: Dense,
    output_norm: LayerNorm,
    heads: usize,
    head_dim: usize,
}

impl Layer {
    fn load(vb: VarBuilder, c: &BertConfig, precision: LinearPrecision) -> Result<Self> {
        let h = c.hidden_size;
        let attention = vb.pp("attention");
        let dense = |l: Linear| Dense::new(l, precision);
        Ok(Self {
            qkv: dense(fused_qkv(attention.pp("self"), h)?)?,
            attention_out: dense(linear(h, h, attention.pp("output").pp("dense"))?)?,
            attention_norm: layer_norm(
                h,
                c.layer_norm_eps,
                attention.pp("output").pp("LayerNorm"),
            )?,
            intermediate: dense(linear(
                h,
                c.intermediate_size,
                vb.pp("intermediate").pp("dense"),
            )?)?,
            output: dense(linear(c.intermediate_size, h, vb.pp("output").pp("dense"))?)?,
            output_norm: layer_norm(h, c.layer_norm_eps, vb.pp("output").pp("LayerNorm"))?,
            heads: c.num_attention_heads,
            head_dim: h / c.num_attention_heads,
        })
    }

    fn forward(&self, x: &Tensor, attend: &Attend) -> Result<Tensor> {
        let qkv = self.qkv.forward(x, false)?;
        let context = match attend {
            Attend::Padded { mask_bias } => self.attend_sliced(&qkv, mask_bias)?,
            Attend::Packed { lengths } => {
                let context = with_cpu_f32(&qkv, |qkv| {
                    attention::attention(qkv, lengths, lengths, self.heads, self.head_dim)
                })?;
                Tensor::from_vec(context, x.shape(), x.device())?
            }
        };
        let attended = self
            .attention_norm
            .forward(&(self.attention_out.forward(&context, false)? + x)?)?;
        let inner = self.intermediate.forward(&attended, true)?;
        self.output_norm
            .forward(&(self.output.forward(&inner, false)? + attended)?)
    }

    /// Attention with candle's ops, a slice of sequences at a time.
    fn attend_sliced(&self, qkv: &Tensor, mask_bias: &Tensor) -> Result<Tensor> {
        let (batch, seq, three_hidden) = qkv.dims3()?;
        let per_slice = (ATTENTION_SCORES_BUDGET / (self.heads * seq * seq).max(1)).max(1);
        let mut contexts = Vec::with_capacity(batch.div_ceil(per_slice));
        let mut first = 0;
        while first < batch {
            let len = per_slice.min(batch - first);
            let qkv = qkv.narrow(0, first, len)?;
            let mask_bias = mask_bias.narrow(0, first, len)?;
            contexts.push(self.attend(&qkv, &mask_bias)?);
            first += len;
        }
        Tensor::cat(&contexts, 0)?.reshape((batch, seq, three_hidden / 3))
    }

    /// Scaled dot-product attention of `[batch, seq, 3 × hidden]` projections;
    /// returns `[batch, seq, hidden]`.
    fn attend(&self, qkv: &Tensor, mask_bias: &Tensor) -> Result<Tensor> {
        let (batch, seq, three_hidden) = qkv.dims3()?;
        let hidden = three_hidden / 3;
        let split = |i: usize| -> Result<Tensor> {
            qkv.narrow(2, i * hidden, hidden)?
                .reshape((batch, seq, self.heads, self.head_dim))?
                .transpose(1, 2)?
                .contiguous()
        };
        let (q, k, v) = (split(0)?, split(1)?, split(2)?);
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let scores = q.matmul(&k.t()?)?;
        let probs = if scores.device().is_cpu() && scores.dtype() == DType::F32 {
            // One pass: scale, mask and softmax each row, with a vectorized exp.
            let bias = mask_bias.flatten_all()?.to_vec1::<f32>()?;
            map_cpu_f32(&scores, |scores| {
                let mut probs = scores.to_vec();
                fastmath::softmax_rows(&mut probs, scale as f32, &bias, seq, self.heads * seq);
                probs
            })?
        } else {
            let scores = (scores * scale)?.broadcast_add(mask_bias)?;
            candle_nn::ops::softmax_last_dim(&scores)?
        };
        probs
            .matmul(&v)?
            .transpose(1, 2)?
            .reshape((batch, seq, hidden))
    }
}

/// How a layer attends.
enum Attend<'a> {
    /// `[batch, seq, hidden]` states; `mask_bias` is `[batch, 1, 1, seq]`, 0 for tokens and
    /// a large negative for padding. candle's ops, on any device.
    Padded { mask_bias: &'a Tensor },
    /// `[tokens, hidden]` states of sequences laid end to end, no padding; the AVX-512
    /// kernel.
    Packed { lengths: &'a [usize] },
}

/// The encoder stack.
pub struct BertModel {
    embeddings: Embeddings,
    layers: Vec<Layer>,
    device: Device,
    dtype: DType,
    own_kernels: bool,
}

impl BertModel {
    /// `own_kernels: false` keeps to candle's ops (no packed batches).
    pub fn load(
        vb: VarBuilder,
        config: &BertConfig,
        precision: LinearPrecision,
        own_kernels: bool,
    ) -> Result<Self> {
        if config.hidden_act != "gelu" {
            candle_core::bail!(
                "hidden_act {:?} is not supported (only \"gelu\")",
                config.hidden_act
            );
        }
        let vb = if vb.contains_tensor("embeddings.word_embeddings.weight") {
            vb
        } else {
            vb.pp("bert")
        };
        let embeddings = Embeddings::load(vb.pp("embeddings"), config)?;
        let layers = (0..config.num_hidden_layers)
            .map(|i| Layer::load(vb.pp(format!("encoder.layer.{i}")), config, precision))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            embeddings,
            layers,
            device: vb.device().clone(),
            dtype: vb.dtype(),
            own_kernels,
        })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Whether [`BertModel::forward_packed`] runs here: f32 states on a CPU with
    /// AVX-512F. Packed batches spend nothing on padding.
    pub fn packs(&self) -> bool {
        self.own_kernels
            && self.device.is_cpu()
            && self.dtype == DType::F32
            && self
                .layers
                .first()
                .is_some_and(|l| attention::supported(l.head_dim))
    }

    /// `ids` and `mask` are `[batch, seq]` u32; returns `[batch, seq, hidden]`.
    pub fn forward(&self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (batch, seq) = mask.dims2()?;
        // (1 - mask) * -10000: padding gets no attention weight (exp underflows to 0).
        let mask_bias =
            ((mask.to_dtype(DType::F32)? - 1.0)? * 10_000.0)?.reshape((batch, 1, 1, seq))?;
        let mut x = self.embeddings.forward(ids, None)?;
        let mask_bias = mask_bias.to_dtype(x.dtype())?;
        let attend = Attend::Padded {
            mask_bias: &mask_bias,
        };
        for layer in &self.layers {
            x = layer.forward(&x, &attend)?;
        }
        Ok(x)
    }

    /// Sequences laid end to end: `ids` `[tokens]` u32, `lengths` of each sequence;
    /// returns `[tokens, hidden]`. Only where [`BertModel::packs`].
    pub fn forward_packed(&self, ids: &[u32], lengths: &[usize]) -> Result<Tensor> {
        let positions: Vec<u32> = lengths.iter().flat_map(|&n| 0..n as u32).collect();
        let tokens = ids.len();
        let ids = Tensor::from_slice(ids, tokens, &self.device)?;
        let positions = Tensor::from_vec(positions, tokens, &self.device)?;
        let mut x = self.embeddings.forward(&ids, Some(&positions))?;
        let attend = Attend::Packed { lengths };
        for layer in &self.layers {
            x = layer.forward(&x, &attend)?;
        }
        Ok(x)
    }
}

/// Mean of the hidden states over real tokens: `[batch, seq, hidden]` → `[batch, hidden]`.
pub fn mean_pool(hidden: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let mask = mask.to_dtype(DType::F32)?.unsqueeze(D::Minus1)?;
    let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
    let counts = mask.sum(1)?.clamp(1e-9, f64::MAX)?;
    summed.broadcast_div(&counts)
}

/// The first token's hidden state (`[CLS]` pooling).
pub fn cls_pool(hidden: &Tensor) -> Result<Tensor> {
    hidden.narrow(1, 0, 1)?.squeeze(1)
}

/// Each row scaled to unit length.
pub fn l2_normalize(x: &Tensor) -> Result<Tensor> {
    let norm = x
        .sqr()?
        .sum_keepdim(D::Minus1)?
        .sqrt()?
        .clamp(1e-12, f64::MAX)?;
    x.broadcast_div(&norm)
}
