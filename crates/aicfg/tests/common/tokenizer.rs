#![allow(dead_code)] // each includer uses a subset
//! A word-level `tokenizer.json` over given words with a BOS template (the shape of the models'
//! own), built with the same `tokenizers` crate the client reads it with. Shared by the
//! end-to-end tests and the unit tests of `serve_bench::tokenized`.
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tokenizers::models::wordlevel::WordLevel;
use tokenizers::pre_tokenizers::whitespace::Whitespace;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::Tokenizer;

/// Ids: `[UNK]` 0, `<s>` 1, then the words in order from 2.
pub fn word_tokenizer(words: &[&str]) -> Tokenizer {
    let mut vocab: HashMap<String, u32> = words
        .iter()
        .enumerate()
        .map(|(i, w)| (w.to_string(), i as u32 + 2))
        .collect();
    vocab.insert("[UNK]".into(), 0);
    vocab.insert("<s>".into(), 1);
    let model = WordLevel::builder()
        .vocab(vocab.into_iter().collect())
        .unk_token("[UNK]".into())
        .build()
        .unwrap();
    let mut t = Tokenizer::new(model);
    t.with_pre_tokenizer(Some(Whitespace {}));
    t.with_post_processor(Some(
        TemplateProcessing::builder()
            .try_single("<s> $A")
            .unwrap()
            .special_tokens(vec![("<s>", 1)])
            .build()
            .unwrap(),
    ));
    t
}

/// [`word_tokenizer`] saved as `dir/tokenizer.json`; returns its path.
pub fn write_word_tokenizer(dir: &Path, words: &[&str]) -> PathBuf {
    let p = dir.join("tokenizer.json");
    word_tokenizer(words).save(&p, false).unwrap();
    p
}
