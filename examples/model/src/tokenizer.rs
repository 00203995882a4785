//! The BERT uncased WordPiece tokenizer of all-MiniLM-L6-v2, as its
//! `tokenizer.json` defines it, step by step:
//!
//! 1. special tokens (`[CLS]`, `[MASK]`, …) are matched in the raw text and
//!    kept whole, the text between them goes through the rest;
//! 2. `BertNormalizer`: control characters dropped, whitespace made a
//!    space, CJK ideographs spaced out, accents stripped (NFD, then
//!    non-spacing marks dropped), lowercased;
//! 3. `BertPreTokenizer`: split on whitespace, each punctuation character a
//!    word of its own;
//! 4. WordPiece: the longest vocabulary prefix first, continuations with
//!    `##`; a word longer than 100 characters or with no split is `[UNK]`;
//! 5. `[CLS] … [SEP]`, truncated to the model's sequence length. No
//!    padding: the forward pass sees only real tokens.

use std::borrow::Cow;
use unicode_categories::UnicodeCategories;
use unicode_normalization::UnicodeNormalization;

/// Words longer than this (in characters) become `[UNK]`.
const MAX_CHARS_PER_WORD: usize = 100;
/// The prefix of a token that continues a word.
const CONTINUATION: &str = "##";

/// A WordPiece tokenizer over a vocabulary.
#[derive(Debug)]
pub struct Tokenizer<'v> {
    /// Each token with its id, sorted by token.
    vocab: Cow<'v, [(&'v str, u32)]>,
    /// Special tokens matched in raw text, longest first.
    specials: Vec<(&'v str, u32)>,
    unk: u32,
    cls: u32,
    sep: u32,
}

/// Why a vocabulary cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VocabError(pub String);

impl std::fmt::Display for VocabError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "vocabulary: {}", self.0)
    }
}

impl<'v> Tokenizer<'v> {
    /// The tokenizer embedded in this crate: its vocabulary a static table,
    /// so making it costs nothing per call.
    pub fn embedded() -> Result<Tokenizer<'static>, VocabError> {
        Tokenizer::with_vocab(Cow::Borrowed(&crate::files::VOCAB_SORTED), crate::files::ADDED_TOKENS)
    }

    /// A tokenizer over `vocab` (one token a line, line `i` is id `i`) and
    /// the special tokens `specials` matched in raw text.
    pub fn new(vocab: &'v str, specials: &[(&'v str, u32)]) -> Result<Self, VocabError> {
        let mut sorted: Vec<(&str, u32)> = vocab.lines().zip(0u32..).collect();
        sorted.sort_unstable();
        Tokenizer::with_vocab(Cow::Owned(sorted), specials)
    }

    /// A tokenizer over `vocab`, sorted by token.
    fn with_vocab(vocab: Cow<'v, [(&'v str, u32)]>, specials: &[(&'v str, u32)]) -> Result<Self, VocabError> {
        let mut tokenizer = Tokenizer { vocab, specials: Vec::new(), unk: 0, cls: 0, sep: 0 };
        let id = |token: &str| tokenizer.id(token).ok_or_else(|| VocabError(format!("no {token} token")));
        let (unk, cls, sep) = (id("[UNK]")?, id("[CLS]")?, id("[SEP]")?);
        let mut specials: Vec<(&str, u32)> = specials.iter().filter(|(s, _)| !s.is_empty()).copied().collect();
        specials.sort_by_key(|(s, _)| std::cmp::Reverse(s.len()));
        (tokenizer.unk, tokenizer.cls, tokenizer.sep, tokenizer.specials) = (unk, cls, sep, specials);
        Ok(tokenizer)
    }

    /// The id of `token`, if the vocabulary has it.
    fn id(&self, token: &str) -> Option<u32> {
        let at = self.vocab.binary_search_by(|(t, _)| (*t).cmp(token)).ok()?;
        Some(self.vocab[at].1)
    }

    /// The token ids of `text`: `[CLS]`, at most `max_len - 2` tokens of
    /// the text, `[SEP]`.
    pub fn encode(&self, text: &str, max_len: usize) -> Vec<u32> {
        let budget = max_len.saturating_sub(2);
        let mut ids = vec![self.cls];
        let mut rest = text;
        while !rest.is_empty() && ids.len() <= budget {
            let (before, special) = self.next_special(rest);
            self.encode_plain(before, &mut ids, budget + 1);
            match special {
                Some((length, id)) => {
                    if ids.len() <= budget {
                        ids.push(id);
                    }
                    rest = &rest[before.len() + length..];
                }
                None => break,
            }
        }
        ids.push(self.sep);
        ids
    }

    /// The text before the leftmost special token of `text`, and that
    /// token's length and id (the longest one where several start there).
    fn next_special<'t>(&self, text: &'t str) -> (&'t str, Option<(usize, u32)>) {
        if self.specials.is_empty() {
            return (text, None);
        }
        for (at, _) in text.char_indices() {
            let tail = &text[at..];
            if let Some((token, id)) = self.specials.iter().find(|(s, _)| tail.starts_with(s)) {
                return (&text[..at], Some((token.len(), *id)));
            }
        }
        (text, None)
    }

    /// Appends the ids of `text` (no special tokens in it) to `ids`, up to
    /// `limit` ids in all.
    fn encode_plain(&self, text: &str, ids: &mut Vec<u32>, limit: usize) {
        if text.is_empty() {
            return;
        }
        let normalized = normalize(text);
        for word in pre_tokenize(&normalized) {
            if ids.len() >= limit {
                break;
            }
            self.word_piece(word, ids);
        }
        // The last word may have gone past the limit by a few pieces.
        ids.truncate(limit);
    }

    /// Appends the WordPiece ids of one word.
    fn word_piece(&self, word: &str, ids: &mut Vec<u32>) {
        if word.chars().count() > MAX_CHARS_PER_WORD {
            ids.push(self.unk);
            return;
        }
        let first = ids.len();
        let mut piece = String::with_capacity(word.len() + CONTINUATION.len());
        let mut start = 0;
        while start < word.len() {
            let mut end = word.len();
            let found = loop {
                piece.clear();
                if start > 0 {
                    piece.push_str(CONTINUATION);
                }
                piece.push_str(&word[start..end]);
                if let Some(id) = self.id(&piece) {
                    break Some(id);
                }
                // The next shorter candidate ends one character earlier.
                match word[start..end].char_indices().next_back() {
                    Some((last, _)) if last > 0 => end = start + last,
                    _ => break None,
                }
            };
            let Some(id) = found else {
                ids.truncate(first);
                ids.push(self.unk);
                return;
            };
            ids.push(id);
            start = end;
        }
    }
}

/// `BertNormalizer` with clean_text, handle_chinese_chars, strip_accents
/// and lowercase all on.
pub fn normalize(text: &str) -> String {
    let mut cleaned = String::with_capacity(text.len());
    for c in text.chars() {
        if c == '\0' || c == '\u{fffd}' || is_control(c) {
            continue;
        }
        if is_whitespace(c) {
            cleaned.push(' ');
        } else if is_chinese(c) {
            cleaned.push(' ');
            cleaned.push(c);
            cleaned.push(' ');
        } else {
            cleaned.push(c);
        }
    }
    let mut out = String::with_capacity(cleaned.len());
    for c in cleaned.nfd() {
        if !c.is_mark_nonspacing() {
            out.extend(c.to_lowercase());
        }
    }
    out
}

/// `BertPreTokenizer`: words split on whitespace, and every punctuation
/// character a word of its own.
pub fn pre_tokenize(text: &str) -> impl Iterator<Item = &str> {
    text.split(char::is_whitespace).filter(|w| !w.is_empty()).flat_map(split_punctuation)
}

fn split_punctuation(word: &str) -> impl Iterator<Item = &str> {
    let mut rest = word;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let length = match rest.char_indices().find(|&(_, c)| is_punctuation(c)) {
            Some((0, c)) => c.len_utf8(),
            Some((at, _)) => at,
            None => rest.len(),
        };
        let (piece, tail) = rest.split_at(length);
        rest = tail;
        Some(piece)
    })
}

/// Tab, newline and carriage return count as whitespace, not as control.
fn is_whitespace(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || c.is_whitespace()
}

/// General categories Cc, Cf and Co (not Cn: unassigned characters stay,
/// and become `[UNK]`), except tab, newline and carriage return.
fn is_control(c: char) -> bool {
    !matches!(c, '\t' | '\n' | '\r') && c.is_other()
}

/// ASCII punctuation (which includes symbols such as `$`, `+`, `^`), or
/// any character of a Unicode punctuation category.
fn is_punctuation(c: char) -> bool {
    c.is_ascii_punctuation() || c.is_punctuation()
}

/// A CJK ideograph, in the blocks BERT spaces out.
fn is_chinese(c: char) -> bool {
    matches!(
        c as u32,
        0x4E00..=0x9FFF
            | 0x3400..=0x4DBF
            | 0x20000..=0x2A6DF
            | 0x2A700..=0x2B73F
            | 0x2B740..=0x2B81F
            | 0x2B920..=0x2CEAF
            | 0xF900..=0xFAFF
            | 0x2F800..=0x2FA1F
    )
}
