//! Exact-length text prompts from the model's own `tokenizer.json` (`--tokenizer`), for servers
//! that take no token-id prompts (chat routes, some frontends).
//!
//! A prompt is a run of space-separated words each of which is one token, alone and after a
//! space. With the pre-tokenizers of the usual vocabularies (byte-level BPE splitting at
//! spaces, SentencePiece's metaspace) such a run has exactly one token per word, so a prompt
//! of `n` words is `n` tokens plus what the tokenizer adds (BOS). That property is checked once
//! on a long sample with the real tokenizer; a tokenizer without it is refused rather than
//! giving approximate lengths. Building a prompt then costs no tokenizer call, so the client
//! stays fast at thousands of streams.
use anyhow::{anyhow, bail, Result};
use std::path::Path;
use tokenizers::Tokenizer;

/// Largest tokenizer.json read (the biggest vocabularies' files are tens of MB).
const MAX_FILE_BYTES: u64 = 512 << 20;
/// Words of the verification sample.
const SAMPLE_WORDS: usize = 2048;

/// Words that are one token each in this tokenizer, and the tokens it adds to a prompt.
#[derive(Debug, Clone)]
pub struct TokenWords {
    pub words: Vec<&'static str>,
    /// Tokens `encode(text, add_special_tokens = true)` adds (e.g. BOS): the server adds them
    /// too and counts them in `usage.prompt_tokens`.
    pub specials: u64,
}

impl TokenWords {
    pub fn from_file(path: &Path) -> Result<Self> {
        let len = std::fs::metadata(path)
            .map_err(|e| anyhow!("--tokenizer {}: {e}", path.display()))?
            .len();
        if len > MAX_FILE_BYTES {
            bail!(
                "--tokenizer {}: {len} bytes is larger than {MAX_FILE_BYTES}",
                path.display()
            );
        }
        let tok = Tokenizer::from_file(path)
            .map_err(|e| anyhow!("--tokenizer {}: not a tokenizer.json ({e})", path.display()))?;
        Self::new(&tok).map_err(|e| anyhow!("--tokenizer {}: {e}", path.display()))
    }

    pub fn new(tok: &Tokenizer) -> Result<Self> {
        let count = |s: &str, special: bool| -> Result<usize> {
            tok.encode(s, special)
                .map(|e| e.len())
                .map_err(|e| anyhow!("encoding failed: {e}"))
        };
        let specials = count("", true)? as u64;
        let mut words = Vec::new();
        for w in super::WORDS {
            if count(w, false)? == 1 && count(&format!(" {w}"), false)? == 1 {
                words.push(w);
            }
        }
        if words.len() < 4 {
            bail!(
                "only {} of {} common English words are single tokens in this vocabulary: exact-length text prompts need at least 4",
                words.len(),
                super::WORDS.len()
            );
        }
        let tw = TokenWords { words, specials };
        let mut rng = aicfg_core::measure::SplitMix64::new(0x5eed);
        let sample = tw.text(SAMPLE_WORDS as u64, &mut rng);
        let (plain, full) = (count(&sample, false)?, count(&sample, true)?);
        if plain != SAMPLE_WORDS || full as u64 != SAMPLE_WORDS as u64 + specials {
            bail!(
                "a prompt of {SAMPLE_WORDS} single-token words encodes to {plain} tokens ({full} with special tokens): this tokenizer merges across words, so exact lengths cannot be built from words"
            );
        }
        Ok(tw)
    }

    /// `n` words, seeded: `n` tokens.
    pub fn text(&self, n: u64, rng: &mut aicfg_core::measure::SplitMix64) -> String {
        let k = self.words.len() as u64;
        let mut s = String::with_capacity(n as usize * 5);
        for i in 0..n {
            if i > 0 {
                s.push(' ');
            }
            s.push_str(self.words[(rng.next_u64() % k) as usize]);
        }
        s
    }
}

#[cfg(test)]
#[path = "../../tests/common/tokenizer.rs"]
mod tokenizer_fixture;

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use tokenizers::models::bpe::{Vocab, BPE};
    use tokenizers::pre_tokenizers::whitespace::Whitespace;

    /// A word-level tokenizer over the common words with a BOS template, like the models'.
    pub fn word_tokenizer() -> Tokenizer {
        super::tokenizer_fixture::word_tokenizer(&super::super::WORDS)
    }

    #[test]
    fn prompts_have_exactly_the_asked_tokens() {
        let tok = word_tokenizer();
        let tw = TokenWords::new(&tok).unwrap();
        assert_eq!(tw.specials, 1);
        assert_eq!(tw.words.len(), super::super::WORDS.len());
        let mut rng = aicfg_core::measure::SplitMix64::new(7);
        for n in [0u64, 1, 2, 17, 1000] {
            let s = tw.text(n, &mut rng);
            assert_eq!(tok.encode(s.as_str(), false).unwrap().len() as u64, n);
            assert_eq!(tok.encode(s.as_str(), true).unwrap().len() as u64, n + 1);
        }
    }

    /// Byte-level BPE (the GPT-2 / Llama-3 / Qwen family), trained here on sentences of the
    /// common words so that each word after a space is one merged token.
    #[test]
    fn byte_level_bpe_gives_exact_lengths() {
        use tokenizers::models::bpe::BpeTrainerBuilder;
        use tokenizers::models::TrainerWrapper;
        use tokenizers::pre_tokenizers::byte_level::ByteLevel;
        let mut t = Tokenizer::new(BPE::default());
        t.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
        let mut trainer: TrainerWrapper = BpeTrainerBuilder::new()
            .vocab_size(600)
            .min_frequency(1)
            .show_progress(false)
            .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
            .build()
            .into();
        let words = super::super::WORDS;
        let corpus: Vec<String> = (0..200)
            .map(|i| {
                (0..12)
                    .map(|j| words[(i * 7 + j * 5) % words.len()])
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        t.train(&mut trainer, corpus.iter()).unwrap();
        let tw = TokenWords::new(&t).unwrap();
        assert_eq!(tw.specials, 0);
        assert!(tw.words.len() >= 4);
        let mut rng = aicfg_core::measure::SplitMix64::new(3);
        let s = tw.text(777, &mut rng);
        assert_eq!(t.encode(s.as_str(), true).unwrap().len(), 777);
    }

    #[test]
    fn a_tokenizer_that_splits_words_is_refused() {
        // Characters only, no merges: every word is several tokens.
        let mut vocab = std::collections::HashMap::new();
        for (i, c) in ('a'..='z').enumerate() {
            vocab.insert(c.to_string(), i as u32 + 1);
        }
        vocab.insert("[UNK]".to_string(), 0);
        let bpe = BPE::builder()
            .vocab_and_merges(vocab.into_iter().collect::<Vocab>(), vec![])
            .unk_token("[UNK]".into())
            .build()
            .unwrap();
        let mut t = Tokenizer::new(bpe);
        t.with_pre_tokenizer(Some(Whitespace {}));
        let e = TokenWords::new(&t).unwrap_err().to_string();
        assert!(e.contains("single tokens"), "{e}");
    }

    #[test]
    fn bad_files_are_errors_naming_the_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("tokenizer.json");
        std::fs::write(&p, "{not json").unwrap();
        let e = TokenWords::from_file(&p).unwrap_err().to_string();
        assert!(
            e.contains("not a tokenizer.json") && e.contains("tokenizer.json"),
            "{e}"
        );
        let e = TokenWords::from_file(&d.path().join("nope.json"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("nope.json"), "{e}");
        word_tokenizer().save(&p, false).unwrap();
        assert_eq!(TokenWords::from_file(&p).unwrap().specials, 1);
    }
}
