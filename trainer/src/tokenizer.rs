//! Training the tokenizer with `tokenizers` (BPE), on text normalised by the core and cut into
//! the core's own pieces.

use edge_classifier::normalize::{PIECE_PATTERN, pieces};
use edge_classifier::{BOS_TOKEN, EOS_TOKEN, UNK_TOKEN};
use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::ModelWrapper;
use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
use tokenizers::normalizers::NormalizerWrapper;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::whitespace::WhitespaceSplit;
use tokenizers::processors::PostProcessorWrapper;
use tokenizers::{AddedToken, SplitDelimiterBehavior, Tokenizer, TokenizerBuilder, TokenizerImpl, Trainer};

/// Trains a BPE tokenizer with at most `vocab_size` tokens on `texts`, which must already be
/// normalised with [`edge_classifier::normalize::Normalization`]. The specials `[UNK]`, `[BOS]`, `[EOS]`
/// get ids 0, 1, 2; they are upper case, which normalised text never is, so no input can
/// produce them.
///
/// The merges are learnt from the core's [`pieces`], the same cut the core encodes with. The
/// saved `tokenizer.json` carries an equivalent pre-tokenizer, so tools that load only that
/// file tokenize alike (a test holds the two to the same ids).
///
/// Returns `tokenizer.json` as the bundle holds it: the trainer encodes its data through a
/// [`edge_classifier::TextEncoder`] read from these bytes, as every server reads them.
pub fn train(texts: &[String], vocab_size: usize, min_frequency: u64) -> anyhow::Result<Vec<u8>> {
    let specials = [UNK_TOKEN, BOS_TOKEN, EOS_TOKEN].map(|t| AddedToken::from(t, true)).to_vec();
    let mut trainer = BpeTrainerBuilder::new()
        .vocab_size(vocab_size)
        .min_frequency(min_frequency)
        .show_progress(false)
        .special_tokens(specials.clone())
        .build();
    trainer
        .feed(texts.iter(), |text| Ok(pieces(text).map(str::to_owned).collect()))
        .map_err(|e| anyhow::anyhow!("tokenizer training failed: {e}"))?;
    let mut model = BPE::builder()
        .unk_token(UNK_TOKEN.into())
        .build()
        .map_err(|e| anyhow::anyhow!("cannot build BPE model: {e}"))?;
    trainer.train(&mut model).map_err(|e| anyhow::anyhow!("tokenizer training failed: {e}"))?;

    let pre: PreTokenizerWrapper = Sequence::new(vec![
        WhitespaceSplit.into(),
        Split::new(SplitPattern::Regex(PIECE_PATTERN.into()), SplitDelimiterBehavior::Isolated, false)
            .map_err(|e| anyhow::anyhow!("bad pre-tokenizer pattern: {e}"))?
            .into(),
    ])
    .into();
    let mut tokenizer: TokenizerImpl<
        ModelWrapper,
        NormalizerWrapper,
        PreTokenizerWrapper,
        PostProcessorWrapper,
        DecoderWrapper,
    > = TokenizerBuilder::new()
        .with_model(model.into())
        .with_pre_tokenizer(Some(pre))
        .build()
        .map_err(|e| anyhow::anyhow!("cannot build tokenizer: {e}"))?;
    // The specials are already in the vocabulary (ids 0..3); this marks them special.
    let _ = tokenizer.add_special_tokens(specials);
    let json =
        Tokenizer::from(tokenizer).to_string(false).map_err(|e| anyhow::anyhow!("cannot serialise tokenizer: {e}"))?;
    Ok(json.into_bytes())
}
