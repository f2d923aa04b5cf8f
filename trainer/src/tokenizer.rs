//! Training the tokenizer with `tokenizers` (BPE), on text normalised by the core.

use edge_classifier::{BOS_TOKEN, EOS_TOKEN, UNK_TOKEN};
use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::{ModelWrapper, TrainerWrapper};
use tokenizers::normalizers::NormalizerWrapper;
use tokenizers::processors::PostProcessorWrapper;
use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::whitespace::WhitespaceSplit;
use tokenizers::{AddedToken, SplitDelimiterBehavior, Tokenizer, TokenizerBuilder, TokenizerImpl};

/// Pieces the pre-tokenizer cuts before BPE learns merges: words (letters, digits, `_`) and
/// runs of punctuation stay whole, so code such as `=>`, `();` or `::` is one piece, which is
/// much of what tells the languages apart.
const PIECE_PATTERN: &str = r"[^\w\s]+";

/// Trains a BPE tokenizer with at most `vocab_size` tokens on `texts`, which must already be
/// normalised with [`edge_classifier::normalize::normalize`]. The specials [UNK], [BOS], [EOS]
/// get ids 0, 1, 2; they are upper case, which normalised text never is, so no input can
/// produce them.
pub fn train(texts: &[String], vocab_size: usize, min_frequency: u64) -> anyhow::Result<Tokenizer> {
    let pre: PreTokenizerWrapper = Sequence::new(vec![
        WhitespaceSplit.into(),
        Split::new(SplitPattern::Regex(PIECE_PATTERN.into()), SplitDelimiterBehavior::Isolated, false)
            .map_err(|e| anyhow::anyhow!("bad pre-tokenizer pattern: {e}"))?
            .into(),
    ])
    .into();
    let specials = [UNK_TOKEN, BOS_TOKEN, EOS_TOKEN].map(|t| AddedToken::from(t, true)).to_vec();
    let mut trainer: TrainerWrapper = BpeTrainerBuilder::new()
        .vocab_size(vocab_size)
        .min_frequency(min_frequency)
        .show_progress(false)
        .special_tokens(specials)
        .build()
        .into();
    let model = BPE::builder()
        .unk_token(UNK_TOKEN.into())
        .build()
        .map_err(|e| anyhow::anyhow!("cannot build BPE model: {e}"))?;
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
    tokenizer
        .train(&mut trainer, texts.iter())
        .map_err(|e| anyhow::anyhow!("tokenizer training failed: {e}"))?;
    Ok(Tokenizer::from(tokenizer))
}
