//! Runs every test vector of `tests/vectors/` (workspace root) through the
//! reader, checking the outcome of every stage, and checks that the
//! committed vectors are exactly what `make-vectors` generates today.

#[allow(dead_code)]
#[path = "../examples/make-vectors.rs"]
mod make_vectors;

use std::collections::BTreeSet;

use qr_packer::payload::read_text_traced;
use qr_packer::{Manifest, Stage, TrustedKeys, read_label_image};

fn trusted() -> TrustedKeys {
    TrustedKeys::from_files(&[make_vectors::vectors_dir().join("test-key.pub.json")]).expect("committed test key")
}

struct Vector {
    name: String,
    json: serde_json::Value,
}

fn vectors() -> Vec<Vector> {
    let mut out: Vec<Vector> = std::fs::read_dir(make_vectors::vectors_dir())
        .expect("tests/vectors exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json") && !p.ends_with("test-key.pub.json"))
        .map(|p| Vector {
            name: p.file_name().unwrap_or_default().to_string_lossy().into_owned(),
            json: serde_json::from_slice(&std::fs::read(&p).expect("read")).expect("vector is JSON"),
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// What each stage did: `ok`, the error variant, or `skipped`.
fn outcomes(passed: &[Stage], error: Option<&qr_packer::PayloadError>) -> Vec<(Stage, String)> {
    Stage::ALL
        .iter()
        .map(|&stage| {
            let outcome = if passed.contains(&stage) {
                "ok".to_string()
            } else if error.is_some_and(|e| e.stage() == Some(stage)) {
                error.map(|e| e.kind().to_string()).unwrap_or_default()
            } else {
                "skipped".to_string()
            };
            (stage, outcome)
        })
        .collect()
}

#[test]
fn every_vector_gives_its_expected_outcome_at_every_stage() {
    let trusted = trusted();
    let vectors = vectors();
    assert!(vectors.len() >= 15, "only {} vectors", vectors.len());
    for Vector { name, json } in &vectors {
        let text = json["text"].as_str().unwrap_or_else(|| panic!("{name}: no text"));
        if let Some(image) = json["image"].as_str() {
            let png = std::fs::read(make_vectors::vectors_dir().join(image)).expect("label image");
            assert_eq!(read_label_image(&png).as_deref(), Ok(text), "{name}: the image holds the text");
        }
        let (passed, result) = read_text_traced(text, &trusted, &[]);
        let got = outcomes(&passed, result.as_ref().err());
        let expected = json["expected"].as_object().unwrap_or_else(|| panic!("{name}: no expected outcomes"));
        // Every stage must be stated: a vector cannot pass by omission.
        assert_eq!(expected.len(), Stage::ALL.len(), "{name}: expected outcomes for exactly the {} stages", Stage::ALL.len());
        for (stage, outcome) in got {
            let want = expected.get(stage.name()).and_then(|v| v.as_str());
            assert_eq!(want, Some(outcome.as_str()), "{name}: stage {stage}");
        }
        match (result, json.get("manifest")) {
            (Ok(bundle), Some(manifest)) => {
                let manifest: Manifest = serde_json::from_value(manifest.clone()).expect("manifest");
                assert_eq!(bundle.manifest, manifest, "{name}");
                assert_eq!(bundle.signer, "vectors-1", "{name}");
            }
            (Ok(_), None) => panic!("{name}: a valid vector must state its manifest"),
            (Err(e), _) => assert!(!e.to_string().is_empty()),
        }
    }
}

#[test]
fn the_vectors_cover_every_stage_failure_the_issue_names() {
    let mut failures = BTreeSet::new();
    let mut valid = 0;
    for Vector { json, .. } in vectors() {
        let expected = json["expected"].as_object().cloned().unwrap_or_default();
        let fails: Vec<_> = expected.values().filter_map(|v| v.as_str()).filter(|v| *v != "ok" && *v != "skipped").collect();
        match fails[..] {
            [] => valid += 1,
            [kind] => {
                failures.insert(kind.to_string());
            }
            _ => panic!("more than one failing stage: {json}"),
        }
    }
    assert!(valid >= enrollment_apps::ALL.len(), "a valid vector per reference app");
    for kind in [
        "WrongPrefix",
        "BadBase45",
        "BadCose",
        "UnexpectedAlgorithm",
        "UnknownKeyId",
        "BadSignature",
        "UnsupportedVersion",
        "UnknownDictionary",
        "BadZstd",
        "TooLarge",
        "MalformedBundle",
    ] {
        assert!(failures.contains(kind), "no vector fails with {kind}");
    }
}

#[test]
fn committed_vectors_are_what_the_generator_makes() {
    for file in make_vectors::vectors() {
        let path = make_vectors::vectors_dir().join(&file.name);
        let committed = std::fs::read(&path).unwrap_or_default();
        assert!(
            committed == file.bytes,
            "{} differs from the generator's output: run `cargo run -p qr-packer --example make-vectors`",
            path.display()
        );
    }
}
