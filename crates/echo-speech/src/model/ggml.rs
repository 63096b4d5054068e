//! CTranslate2 Whisper → ggml conversion.
//!
//! Output is the file layout of whisper.cpp's `models/convert-pt-to-ggml.py`
//! (the format `whisper_init_from_file` reads), little endian:
//!
//! ```text
//! i32 magic 0x67676d6c ("ggml")
//! i32 n_vocab, n_audio_ctx, n_audio_state, n_audio_head, n_audio_layer,
//!     n_text_ctx, n_text_state, n_text_head, n_text_layer, n_mels, ftype
//! i32 n_mels, i32 201, f32[n_mels × 201]          mel filterbank
//! i32 n_tokens, n_tokens × { i32 len, bytes }      regular tokens, id order
//! tensors × { i32 n_dims, i32 name_len, i32 type,
//!             i32 dims[n_dims] (innermost first), name, data }
//! ```
//!
//! `ftype` is ggml's file type: 1 (mostly f16), or for quantized weights
//! `GGML_QNT_VERSION` (2) × 1000 + 7 (q8_0), 8 (q5_0) or 9 (q5_1), as the
//! `quantize` tool writes it. Tensor `type` is a `ggml_type`: 0 f32, 1 f16,
//! 6 q5_0, 7 q5_1, 8 q8_0.
//!
//! Tensor names, order and types follow the reference converter applied to
//! openai/whisper's checkpoint: weights of rank ≥ 2 are f16; biases, layer
//! norms, conv biases (reshaped to `[n, 1]`) and both positional embeddings are
//! f32. Quantizing follows whisper.cpp's `examples/quantize`: every 2-D tensor
//! except [`NOT_QUANTIZED`] (so the linear weights and the token embedding)
//! goes into blocks (see [`super::quant`]); the conv kernels stay f16.
//!
//! CTranslate2 fuses some projections, which are split back here:
//!
//! | CTranslate2                                   | whisper                          |
//! |-----------------------------------------------|----------------------------------|
//! | `*/self_attention/linear_0` (q‖k‖v rows)      | `attn.query/key/value`           |
//! | `*/self_attention/linear_1`                   | `attn.out`                       |
//! | `decoder/*/attention/linear_0`                | `cross_attn.query`               |
//! | `decoder/*/attention/linear_1` (k‖v rows)     | `cross_attn.key/value`           |
//! | `decoder/*/attention/linear_2`                | `cross_attn.out`                 |
//! | `*/ffn/linear_0`, `*/ffn/linear_1`            | `mlp.0`, `mlp.2`                 |
//! | `self_attention/layer_norm`, `attention/…`, `ffn/…` | `attn_ln`, `cross_attn_ln`, `mlp_ln` |
//!
//! Whisper's key projections have no bias; CTranslate2 stores zeros for the
//! fused key rows, which are checked to be zero and dropped.
//!
//! The conversion is a pure function of its inputs (no clocks, no hash-map
//! iteration order, no platform maths), so the output is byte-for-byte
//! reproducible.

use std::io::Write;

use anyhow::{bail, ensure, Context, Result};

use super::ct2::{f16_to_f32, Ct2Model, DType, Variable};
use super::quant::{BlockFormat, BLOCK_LEN};
use super::{mel, vocab, Quantization};

const GGML_MAGIC: i32 = 0x6767_6d6c;
/// ggml tensor type ids used by the format.
const GGML_TYPE_F32: i32 = 0;
const GGML_TYPE_F16: i32 = 1;
const GGML_TYPE_Q5_0: i32 = 6;
const GGML_TYPE_Q5_1: i32 = 7;
const GGML_TYPE_Q8_0: i32 = 8;
/// ggml file type of a model whose weight matrices are f16.
const GGML_FTYPE_MOSTLY_F16: i32 = 1;
/// Added to a quantized file type: ggml's `GGML_QNT_VERSION` (2) × 1000, which whisper.cpp
/// strips when loading.
const QUANTIZATION_VERSION: i32 = 2 * 1000;

/// 2-D tensors whisper.cpp's `quantize` tool leaves as they are (its `to_skip`): whisper.cpp
/// loads them as f32 whatever the file type.
const NOT_QUANTIZED: [&str; 4] = [
    "encoder.conv1.bias",
    "encoder.conv2.bias",
    "encoder.positional_embedding",
    "decoder.positional_embedding",
];

/// The header's file type and, for quantized models, the block format with its tensor type.
fn file_type(quantization: Quantization) -> (i32, Option<(BlockFormat, i32)>) {
    match quantization {
        Quantization::F16 => (GGML_FTYPE_MOSTLY_F16, None),
        Quantization::Q8_0 => (
            QUANTIZATION_VERSION + 7,
            Some((BlockFormat::Q8_0, GGML_TYPE_Q8_0)),
        ),
        Quantization::Q5_0 => (
            QUANTIZATION_VERSION + 8,
            Some((BlockFormat::Q5_0, GGML_TYPE_Q5_0)),
        ),
        Quantization::Q5_1 => (
            QUANTIZATION_VERSION + 9,
            Some((BlockFormat::Q5_1, GGML_TYPE_Q5_1)),
        ),
    }
}

/// The four files of a faster-whisper (CTranslate2) model directory.
pub(crate) struct Ct2Files {
    pub model_bin: Vec<u8>,
    pub config_json: Vec<u8>,
    pub tokenizer_json: Vec<u8>,
    pub vocabulary_txt: Vec<u8>,
}

/// Whisper hyper-parameters, in the order of the ggml header.
#[derive(Debug, Clone, Copy)]
struct HParams {
    n_vocab: usize,
    n_audio_ctx: usize,
    n_audio_state: usize,
    n_audio_head: usize,
    n_audio_layer: usize,
    n_text_ctx: usize,
    n_text_state: usize,
    n_text_head: usize,
    n_text_layer: usize,
    n_mels: usize,
}

/// Writes the ggml model for `files`, its weights stored as `quantization` says, into `out`.
pub(crate) fn convert(
    files: &Ct2Files,
    quantization: Quantization,
    out: &mut impl Write,
) -> Result<()> {
    let model = Ct2Model::parse(&files.model_bin).context("parsing CTranslate2 model.bin")?;
    ensure!(
        model.spec == "WhisperSpec",
        "expected a WhisperSpec model, got {}",
        model.spec
    );
    ensure!(
        model.revision == 3,
        "unsupported WhisperSpec revision {}",
        model.revision
    );
    let _: serde_json::Value =
        serde_json::from_slice(&files.config_json).context("config.json is not JSON")?;

    let hp = hparams(&model)?;
    let (ftype, blocks) = file_type(quantization);
    let mut w = GgmlWriter { out, blocks };

    // Header.
    w.i32(GGML_MAGIC)?;
    for v in [
        hp.n_vocab,
        hp.n_audio_ctx,
        hp.n_audio_state,
        hp.n_audio_head,
        hp.n_audio_layer,
        hp.n_text_ctx,
        hp.n_text_state,
        hp.n_text_head,
        hp.n_text_layer,
        hp.n_mels,
    ] {
        w.usize(v)?;
    }
    w.i32(ftype)?;

    // Mel filters.
    w.usize(hp.n_mels)?;
    w.usize(mel::N_BINS)?;
    for f in mel::filters(hp.n_mels) {
        w.bytes(&f.to_le_bytes())?;
    }

    // Vocabulary.
    let tokens = vocab::regular_tokens(&files.tokenizer_json, &files.vocabulary_txt)?;
    w.usize(tokens.len())?;
    for t in &tokens {
        w.usize(t.len())?;
        w.bytes(t)?;
    }

    // Tensors, in the state-dict order of openai/whisper's `Whisper` module.
    let enc = "encoder";
    w.tensor_f32(
        "encoder.positional_embedding",
        model.var("encoder/position_encodings/encodings")?,
    )?;
    for conv in ["conv1", "conv2"] {
        let weight = model.var(&format!("{enc}/{conv}/weight"))?;
        ensure!(weight.dims.len() == 3, "{conv} weight must be rank 3");
        w.tensor_f16(&format!("encoder.{conv}.weight"), weight)?;
        let bias = model.var(&format!("{enc}/{conv}/bias"))?;
        // Stored as [n, 1] so whisper.cpp can broadcast it over time.
        w.tensor(
            &format!("encoder.{conv}.bias"),
            &[bias.len(), 1],
            Data::F32(bias),
        )?;
    }
    for i in 0..hp.n_audio_layer {
        let src = format!("{enc}/layer_{i}");
        let dst = format!("encoder.blocks.{i}");
        self_attention(&mut w, &model, &src, &dst, hp.n_audio_state)?;
        mlp(&mut w, &model, &src, &dst)?;
    }
    layer_norm(&mut w, &model, "encoder/layer_norm", "encoder.ln_post")?;

    w.tensor_f32(
        "decoder.positional_embedding",
        model.var("decoder/position_encodings/encodings")?,
    )?;
    w.tensor_f16(
        "decoder.token_embedding.weight",
        model.var("decoder/embeddings/weight")?,
    )?;
    // whisper ties the output projection to the token embedding; so does the
    // CTranslate2 model (as an alias). Anything else cannot be represented.
    let projection = model.var("decoder/projection/weight")?;
    ensure!(
        projection.data.as_ptr() == model.var("decoder/embeddings/weight")?.data.as_ptr(),
        "decoder projection is not tied to the token embedding"
    );
    for i in 0..hp.n_text_layer {
        let src = format!("decoder/layer_{i}");
        let dst = format!("decoder.blocks.{i}");
        self_attention(&mut w, &model, &src, &dst, hp.n_text_state)?;
        cross_attention(&mut w, &model, &src, &dst, hp.n_text_state)?;
        mlp(&mut w, &model, &src, &dst)?;
    }
    layer_norm(&mut w, &model, "decoder/layer_norm", "decoder.ln")?;
    Ok(())
}

/// Derives the header hyper-parameters from the tensor shapes.
fn hparams(model: &Ct2Model<'_>) -> Result<HParams> {
    let count_layers = |prefix: &str| {
        (0..)
            .take_while(|i| {
                model
                    .variables
                    .contains_key(&format!("{prefix}/layer_{i}/ffn/layer_norm/gamma"))
            })
            .count()
    };
    let heads =
        |name: &str| -> Result<usize> { Ok(usize::try_from(model.var(name)?.scalar_int()?)?) };
    let enc_pos = model.var("encoder/position_encodings/encodings")?;
    let dec_pos = model.var("decoder/position_encodings/encodings")?;
    let emb = model.var("decoder/embeddings/weight")?;
    let conv1 = model.var("encoder/conv1/weight")?;
    ensure!(enc_pos.dims.len() == 2 && dec_pos.dims.len() == 2 && emb.dims.len() == 2);
    Ok(HParams {
        n_vocab: emb.dims[0],
        n_audio_ctx: enc_pos.dims[0],
        n_audio_state: enc_pos.dims[1],
        n_audio_head: heads("encoder/num_heads")?,
        n_audio_layer: count_layers("encoder"),
        n_text_ctx: dec_pos.dims[0],
        n_text_state: dec_pos.dims[1],
        n_text_head: heads("decoder/num_heads")?,
        n_text_layer: count_layers("decoder"),
        n_mels: conv1.dims[1],
    })
}

/// Self-attention: split fused q‖k‖v, drop the (zero) key bias.
fn self_attention(
    w: &mut GgmlWriter<'_, impl Write>,
    model: &Ct2Model<'_>,
    src: &str,
    dst: &str,
    n_state: usize,
) -> Result<()> {
    let qkv_w = model.var(&format!("{src}/self_attention/linear_0/weight"))?;
    let qkv_b = model.var(&format!("{src}/self_attention/linear_0/bias"))?;
    let [q_w, k_w, v_w] = split_rows::<3>(qkv_w, n_state)?;
    let [q_b, k_b, v_b] = split_rows::<3>(qkv_b, n_state)?;
    ensure_zero(&k_b, &format!("{src}/self_attention key bias"))?;
    w.linear(&format!("{dst}.attn.query"), &q_w, Some(&q_b))?;
    w.linear(&format!("{dst}.attn.key"), &k_w, None)?;
    w.linear(&format!("{dst}.attn.value"), &v_w, Some(&v_b))?;
    linear(
        w,
        model,
        &format!("{src}/self_attention/linear_1"),
        &format!("{dst}.attn.out"),
    )?;
    layer_norm(
        w,
        model,
        &format!("{src}/self_attention/layer_norm"),
        &format!("{dst}.attn_ln"),
    )
}

/// Cross-attention: query as is, split fused k‖v, drop the (zero) key bias.
fn cross_attention(
    w: &mut GgmlWriter<'_, impl Write>,
    model: &Ct2Model<'_>,
    src: &str,
    dst: &str,
    n_state: usize,
) -> Result<()> {
    linear(
        w,
        model,
        &format!("{src}/attention/linear_0"),
        &format!("{dst}.cross_attn.query"),
    )?;
    let kv_w = model.var(&format!("{src}/attention/linear_1/weight"))?;
    let kv_b = model.var(&format!("{src}/attention/linear_1/bias"))?;
    let [k_w, v_w] = split_rows::<2>(kv_w, n_state)?;
    let [k_b, v_b] = split_rows::<2>(kv_b, n_state)?;
    ensure_zero(&k_b, &format!("{src}/attention key bias"))?;
    w.linear(&format!("{dst}.cross_attn.key"), &k_w, None)?;
    w.linear(&format!("{dst}.cross_attn.value"), &v_w, Some(&v_b))?;
    linear(
        w,
        model,
        &format!("{src}/attention/linear_2"),
        &format!("{dst}.cross_attn.out"),
    )?;
    layer_norm(
        w,
        model,
        &format!("{src}/attention/layer_norm"),
        &format!("{dst}.cross_attn_ln"),
    )
}

/// Feed-forward block: `ffn/linear_0` → `mlp.0`, `ffn/linear_1` → `mlp.2`.
fn mlp(
    w: &mut GgmlWriter<'_, impl Write>,
    model: &Ct2Model<'_>,
    src: &str,
    dst: &str,
) -> Result<()> {
    linear(
        w,
        model,
        &format!("{src}/ffn/linear_0"),
        &format!("{dst}.mlp.0"),
    )?;
    linear(
        w,
        model,
        &format!("{src}/ffn/linear_1"),
        &format!("{dst}.mlp.2"),
    )?;
    layer_norm(
        w,
        model,
        &format!("{src}/ffn/layer_norm"),
        &format!("{dst}.mlp_ln"),
    )
}

fn linear(
    w: &mut GgmlWriter<'_, impl Write>,
    model: &Ct2Model<'_>,
    src: &str,
    dst: &str,
) -> Result<()> {
    let weight = model.var(&format!("{src}/weight"))?;
    let bias = model.var(&format!("{src}/bias"))?;
    w.linear(dst, weight, Some(bias))
}

fn layer_norm(
    w: &mut GgmlWriter<'_, impl Write>,
    model: &Ct2Model<'_>,
    src: &str,
    dst: &str,
) -> Result<()> {
    w.tensor_f32(
        &format!("{dst}.weight"),
        model.var(&format!("{src}/gamma"))?,
    )?;
    w.tensor_f32(&format!("{dst}.bias"), model.var(&format!("{src}/beta"))?)
}

/// Splits a fused `[N·n_state, …]` tensor row-wise into `N` equal parts.
fn split_rows<'a, const N: usize>(var: &Variable<'a>, n_state: usize) -> Result<[Variable<'a>; N]> {
    ensure!(
        !var.dims.is_empty() && var.dims[0] == N * n_state,
        "cannot split dims {:?} into {N} × {n_state} rows",
        var.dims
    );
    let mut dims = var.dims.clone();
    dims[0] = n_state;
    let part_bytes = var.data.len() / N;
    Ok(std::array::from_fn(|i| Variable {
        dims: dims.clone(),
        dtype: var.dtype,
        data: &var.data[i * part_bytes..(i + 1) * part_bytes],
    }))
}

fn ensure_zero(var: &Variable<'_>, what: &str) -> Result<()> {
    // +0.0 and -0.0 both mean "no bias".
    let all_zero = match var.dtype {
        DType::F16 => var
            .data
            .chunks_exact(2)
            .all(|c| u16::from_le_bytes([c[0], c[1]]) & 0x7fff == 0),
        DType::F32 => var
            .data
            .chunks_exact(4)
            .all(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) & 0x7fff_ffff == 0),
        other => bail!("{what}: unexpected dtype {other:?}"),
    };
    ensure!(
        all_zero,
        "{what} is not zero; whisper has no key bias, refusing to drop it"
    );
    Ok(())
}

/// How a tensor's payload is written.
enum Data<'v, 'a> {
    /// Keep half precision (source must be f16).
    F16(&'v Variable<'a>),
    /// Widen to single precision (source f16 or f32).
    F32(&'v Variable<'a>),
}

struct GgmlWriter<'w, W: Write> {
    out: &'w mut W,
    /// How 2-D tensors are quantized (block format, tensor type); `None` keeps them as given.
    blocks: Option<(BlockFormat, i32)>,
}

impl<W: Write> GgmlWriter<'_, W> {
    fn bytes(&mut self, b: &[u8]) -> Result<()> {
        self.out.write_all(b).context("writing ggml model")
    }

    fn i32(&mut self, v: i32) -> Result<()> {
        self.bytes(&v.to_le_bytes())
    }

    fn usize(&mut self, v: usize) -> Result<()> {
        self.i32(i32::try_from(v).context("value does not fit the ggml i32 header")?)
    }

    fn linear(
        &mut self,
        name: &str,
        weight: &Variable<'_>,
        bias: Option<&Variable<'_>>,
    ) -> Result<()> {
        ensure!(weight.dims.len() == 2, "{name}: weight must be rank 2");
        self.tensor_f16(&format!("{name}.weight"), weight)?;
        if let Some(bias) = bias {
            ensure!(
                bias.dims == [weight.dims[0]],
                "{name}: bias dims {:?} do not match weight {:?}",
                bias.dims,
                weight.dims
            );
            self.tensor_f32(&format!("{name}.bias"), bias)?;
        }
        Ok(())
    }

    fn tensor_f16(&mut self, name: &str, var: &Variable<'_>) -> Result<()> {
        self.tensor(name, &var.dims, Data::F16(var))
    }

    fn tensor_f32(&mut self, name: &str, var: &Variable<'_>) -> Result<()> {
        self.tensor(name, &var.dims, Data::F32(var))
    }

    /// Writes one tensor record; `dims` are row-major (outermost first), as
    /// numpy would report them, and must describe the same element count.
    /// With quantization, 2-D tensors but [`NOT_QUANTIZED`] are written in
    /// blocks whatever `data` asks.
    fn tensor(&mut self, name: &str, dims: &[usize], data: Data<'_, '_>) -> Result<()> {
        let (var, mut ttype) = match &data {
            Data::F16(v) => (*v, GGML_TYPE_F16),
            Data::F32(v) => (*v, GGML_TYPE_F32),
        };
        ensure!(
            dims.iter().product::<usize>() == var.len(),
            "{name}: dims {dims:?} do not match {:?}",
            var.dims
        );
        let blocks = self
            .blocks
            .filter(|_| dims.len() == 2 && !NOT_QUANTIZED.contains(&name));
        if let Some((_, block_type)) = blocks {
            ensure!(
                dims[1].is_multiple_of(BLOCK_LEN),
                "{name}: rows of {} cannot be quantized in blocks of {BLOCK_LEN}",
                dims[1]
            );
            ttype = block_type;
        }
        self.usize(dims.len())?;
        self.usize(name.len())?;
        self.i32(ttype)?;
        for &d in dims.iter().rev() {
            self.usize(d)?;
        }
        self.bytes(name.as_bytes())?;
        if let Some((format, _)) = blocks {
            return self.quantized(name, var, dims[1], format);
        }
        match (data, var.dtype) {
            (Data::F16(_), DType::F16) | (Data::F32(_), DType::F32) => self.bytes(var.data),
            (Data::F32(_), DType::F16) => {
                let mut buf = Vec::with_capacity(var.data.len() * 2);
                for c in var.data.chunks_exact(2) {
                    let f = f16_to_f32(u16::from_le_bytes([c[0], c[1]]));
                    buf.extend_from_slice(&f.to_le_bytes());
                }
                self.bytes(&buf)
            }
            (_, dtype) => bail!("{name}: cannot write a {dtype:?} source tensor"),
        }
    }

    /// Writes `var` in `format` blocks, one row of `row_len` weights at a time (whisper.cpp
    /// widens f16 weights to f32 before quantizing, exactly, as here).
    fn quantized(
        &mut self,
        name: &str,
        var: &Variable<'_>,
        row_len: usize,
        format: BlockFormat,
    ) -> Result<()> {
        let (width, widen): (usize, fn(&[u8]) -> f32) = match var.dtype {
            DType::F16 => (2, |c| f16_to_f32(u16::from_le_bytes([c[0], c[1]]))),
            DType::F32 => (4, |c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            dtype => bail!("{name}: cannot quantize a {dtype:?} source tensor"),
        };
        let mut row = Vec::with_capacity(row_len);
        let mut blocks = Vec::new();
        for bytes in var.data.chunks_exact(row_len * width) {
            row.clear();
            row.extend(bytes.chunks_exact(width).map(widen));
            blocks.clear();
            format.quantize(&row, &mut blocks);
            self.bytes(&blocks)?;
        }
        Ok(())
    }
}
