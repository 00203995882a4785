//! Tests against `reference/embeddings.json`, which
//! `reference/make_reference.py` writes with sentence-transformers.

use super::*;
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    max_seq_length: usize,
    dimensions: usize,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    text: String,
    ids: Vec<u32>,
    embedding: Vec<f32>,
}

fn fixture() -> Fixture {
    serde_json::from_str(include_str!("../reference/embeddings.json")).expect("the fixture parses")
}

#[test]
fn the_fixture_fits_the_model() {
    let fixture = fixture();
    assert_eq!((fixture.max_seq_length, fixture.dimensions), (MAX_TOKENS, HIDDEN));
    assert!(fixture.cases.len() >= 20);
}

#[test]
fn token_ids_match_the_reference_tokenizer() {
    let tokenizer = Tokenizer::embedded().unwrap();
    for case in fixture().cases {
        assert_eq!(tokenizer.encode(&case.text, MAX_TOKENS), case.ids, "text {:?}", case.text);
    }
}

/// The cosine of two vectors, computed in f64 so that it resolves
/// differences far below f32's rounding.
fn cosine64(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(&x, &y)| f64::from(x) * f64::from(y)).sum();
    let norm = |v: &[f32]| v.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b))
}

/// The lowest cosine between the CPU embeddings of `cases` and the
/// reference's, with its text.
fn worst_cpu_cosine(cases: impl IntoIterator<Item = Case>) -> (f64, String) {
    let model = Model::embedded().unwrap();
    let mut worst = (f64::INFINITY, String::new());
    for case in cases {
        let vector = cpu::embed(&model, &case.ids);
        assert_eq!(vector.len(), HIDDEN);
        let norm = vector.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "norm {norm} for {:?}", case.text);
        let cos = cosine64(&vector, &case.embedding);
        if cos < worst.0 {
            worst = (cos, case.text);
        }
    }
    worst
}

#[test]
fn the_cpu_forward_pass_matches_the_reference_on_short_texts() {
    // Unoptimised builds run about ten tokens a second: the short texts
    // here, every text in `--release`.
    let short = fixture().cases.into_iter().filter(|c| c.ids.len() <= 12);
    let (cos, text) = worst_cpu_cosine(short);
    assert!(cos >= 0.999, "cosine {cos} for {text:?}");
}

#[test]
#[cfg_attr(debug_assertions, ignore = "slow unoptimised: run with --release")]
fn the_cpu_forward_pass_matches_the_reference() {
    let (cos, text) = worst_cpu_cosine(fixture().cases);
    eprintln!("lowest cosine over the fixture: {cos:.12} ({text:?})");
    assert!(cos >= 0.999, "cosine {cos} for {text:?}");
}

/// Every Unicode scalar value, alone and between two letters, against
/// the ids the reference tokenizer gave (`make_reference.py --code-points
/// FILE`, then `TOOLMESH_TOKENIZER_DUMP=FILE cargo test -- --ignored`).
#[test]
#[ignore = "needs TOOLMESH_TOKENIZER_DUMP, written by make_reference.py --code-points"]
fn every_code_point_tokenizes_like_the_reference() {
    let path = std::env::var("TOOLMESH_TOKENIZER_DUMP").expect("TOOLMESH_TOKENIZER_DUMP names the dump");
    let dump = std::fs::read_to_string(path).expect("the dump is readable");
    let tokenizer = Tokenizer::embedded().unwrap();
    let parse = |ids: &str| ids.split(' ').map(|i| i.parse::<u32>().unwrap()).collect::<Vec<_>>();
    let mut wrong = Vec::new();
    let mut lines = 0;
    for line in dump.lines() {
        let mut fields = line.split('\t');
        let (Some(code), Some(alone), Some(between)) = (fields.next(), fields.next(), fields.next()) else {
            panic!("bad line {line:?}");
        };
        let c = char::from_u32(u32::from_str_radix(code, 16).unwrap()).unwrap();
        lines += 1;
        if tokenizer.encode(&c.to_string(), MAX_TOKENS) != parse(alone)
            || tokenizer.encode(&format!("x{c}x"), MAX_TOKENS) != parse(between)
        {
            wrong.push(format!("U+{:04X}", c as u32));
        }
    }
    assert!(lines > 1_000_000, "only {lines} code points in the dump");
    assert!(wrong.is_empty(), "{} of {lines} code points differ: {:?}", wrong.len(), &wrong[..wrong.len().min(50)]);
}

/// Calls tool `name` of the component with `args`, natively.
fn call(name: &str, args: &str) -> Result<serde_json::Value, ToolError> {
    let tool = tools().into_iter().find(|t| t.name() == name).expect("the tool exists");
    let content = tool.call(args)?;
    let [Content::Json(json)] = content.as_slice() else { panic!("not one JSON item: {content:?}") };
    Ok(serde_json::from_str(json).unwrap())
}

#[test]
fn embed_returns_unit_vectors_and_token_counts() {
    // Natively only the path inside wasm runs (the host's interfaces are
    // not there).
    let args = r#"{"texts": ["A man is eating food.", "A man is eating a piece of bread."], "device": "wasm"}"#;
    let result = call("embed", args).unwrap();
    assert_eq!(result["device"], "wasm");
    assert_eq!(result["dimensions"], 384);
    assert_eq!(result["tokens"], serde_json::json!([8, 11]));
    let vectors: Vec<Vec<f32>> = serde_json::from_value(result["embeddings"].clone()).unwrap();
    assert_eq!(vectors.len(), 2);
    // The pair sentence-transformers' documentation shows: 0.7553.
    let cos = cosine(&vectors[0], &vectors[1]);
    assert!((cos - 0.7553).abs() < 5e-4, "{cos}");
}

#[test]
fn similarity_ranks_the_closest_meaning_first() {
    let args = r#"{"query": "A man is eating pasta.", "device": "wasm",
        "candidates": ["A monkey is playing drums.", "A man is eating food.", "A man is riding a horse."]}"#;
    let result = call("similarity", args).unwrap();
    let ranked = result["ranked"].as_array().unwrap();
    let order: Vec<u64> = ranked.iter().map(|m| m["index"].as_u64().unwrap()).collect();
    assert_eq!(order[0], 1, "{result}");
    assert_eq!(ranked[0]["text"], "A man is eating food.");
    let scores: Vec<f64> = ranked.iter().map(|m| m["score"].as_f64().unwrap()).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
}

#[test]
fn bad_arguments_are_refused_with_the_field_named() {
    let refused = |name: &str, args: &str| match call(name, args) {
        Err(ToolError::InvalidArguments(message)) => message,
        other => panic!("{args}: {other:?}"),
    };
    assert!(refused("embed", r#"{"texts": []}"#).contains("texts: 0 given"));
    let many = serde_json::json!({ "texts": vec!["a"; MAX_TEXTS + 1] }).to_string();
    assert!(refused("embed", &many).contains("texts: 129 given"));
    let long = serde_json::json!({ "texts": ["a", "b".repeat(MAX_CHARS + 1)] }).to_string();
    assert!(refused("embed", &long).starts_with("texts[1]: 10001 characters"));
    let total = serde_json::json!({ "texts": vec!["c".repeat(MAX_CHARS); 11] }).to_string();
    assert!(refused("embed", &total).contains("110000 characters in all"));
    let long_candidate = serde_json::json!({ "query": "q", "candidates": ["b".repeat(MAX_CHARS + 1)] }).to_string();
    assert!(refused("similarity", &long_candidate).starts_with("candidates[0]"));
    assert!(refused("similarity", r#"{"query": "q", "candidates": []}"#).contains("candidates: 0 given"));
    assert!(refused("embed", r#"{"texts": ["a"], "device": "tpu"}"#).contains("device"));
    assert!(refused("embed", r#"{"texts": ["a"], "colour": 1}"#).contains("colour"));
}

#[test]
fn too_many_tokens_in_all_are_refused_before_any_work() {
    // 100 texts of 254 word pieces each ("a a a …"): 25600 tokens.
    let text = "a ".repeat(300);
    let args = serde_json::json!({ "texts": vec![text; 100], "device": "wasm" }).to_string();
    match call("embed", &args) {
        Err(ToolError::InvalidArguments(message)) => assert!(message.contains("25600 tokens"), "{message}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn long_texts_are_cut_to_the_sequence_length() {
    let tokenizer = Tokenizer::embedded().unwrap();
    let ids = tokenizer.encode(&"word ".repeat(1000), MAX_TOKENS);
    assert_eq!(ids.len(), MAX_TOKENS);
    assert_eq!((ids[0], ids[MAX_TOKENS - 1]), (101, 102));
    // A word of several pieces is cut between its pieces, and the cut holds
    // when more words follow.
    let ids = tokenizer.encode("unaffable unaffable unaffable", 7);
    assert_eq!(ids, [101, 14477, 20961, 3468, 14477, 20961, 102]);
    // Special tokens in the text count toward the limit too.
    let ids = tokenizer.encode(&"[MASK] ".repeat(1000), 8);
    assert_eq!(ids, [101, 103, 103, 103, 103, 103, 103, 102]);
    assert_eq!(tokenizer.encode("", MAX_TOKENS), [101, 102]);
}

#[test]
fn erf_is_accurate() {
    for (x, want) in [(0.0, 0.0), (0.5, 0.520_499_9), (1.0, 0.842_700_8), (-2.0, -0.995_322_3), (4.0, 0.999_999_98)] {
        assert!((cpu::erf(x) - want).abs() < 2e-7, "erf({x}) = {}", cpu::erf(x));
    }
}

#[test]
fn the_vocabulary_table_is_sorted_and_unique() {
    let table = &crate::files::VOCAB_SORTED;
    assert!(table.windows(2).all(|w| w[0].0 < w[1].0), "strictly increasing tokens: binary search finds each");
    let mut ids: Vec<u32> = table.iter().map(|(_, id)| *id).collect();
    ids.sort_unstable();
    assert!(ids.iter().copied().eq(0..table.len() as u32), "every id once");
}
