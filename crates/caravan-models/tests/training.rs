//! Training real classifiers: UCI handwritten digits (pixels) and short reviews (TF-IDF), the
//! held-out evaluation, fine-tuning from a parent, and the artifact round trip serving relies on.

use caravan_core::keccak256;
use caravan_models::{ArtifactStore, Classifier, Example, TrainError, TrainOptions};
use serde_json::json;

/// The digits scikit-learn ships (1,797 8×8 images) from `$CARAVAN_DIGITS_DIR`, else
/// `~/.cache/caravan/digits`; the test fails, naming the script that fetches them, when they are
/// not there (`scripts/test.sh` fetches them before the tests).
fn digits() -> Vec<Example> {
    let dir = std::env::var_os("CARAVAN_DIGITS_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").expect("HOME is set");
            std::path::PathBuf::from(home).join(".cache/caravan/digits")
        });
    let text = std::fs::read_to_string(dir.join("digits.csv")).unwrap_or_else(|error| {
        panic!(
            "digits not found in {} ({error}); run scripts/fetch-digits.sh (or scripts/test.sh, which installs everything the tests need)",
            dir.display()
        )
    });
    text.lines()
        .enumerate()
        .map(|(n, line)| {
            let mut values: Vec<u8> = line.split(',').map(|v| v.parse().unwrap()).collect();
            let truth = values.pop().unwrap();
            let data = json!({ "image": n, "pixels": values });
            Example {
                key: keccak256(data.to_string().as_bytes()),
                data,
                label: truth.to_string(),
            }
        })
        .collect()
}

#[test]
fn a_digit_classifier_trained_on_pixels_is_right_on_held_out_images() {
    let examples = digits();
    let trained = Classifier::train(&examples, &TrainOptions::default()).unwrap();
    let evaluation = trained.evaluation.expect("a fifth is held out");
    assert_eq!(trained.train_examples + evaluation.examples, 1_797);
    assert!(
        (300..420).contains(&evaluation.examples),
        "about a fifth held out, got {}",
        evaluation.examples
    );
    assert_eq!(trained.classifier.features.fields(), ["pixels"]);
    assert_eq!(trained.classifier.classes.len(), 10);
    assert!(
        evaluation.accuracy > 0.95,
        "held-out accuracy {:.3}",
        evaluation.accuracy
    );
    assert_eq!(evaluation.per_class.len(), 10);

    // The artifact serves the same predictions after a round trip through the store.
    let dir = tempfile::tempdir().unwrap();
    let store = ArtifactStore::new(dir.path());
    let hash = store.put(&trained.classifier.to_artifact()).unwrap();
    assert_eq!(hash, trained.classifier.content_hash());
    let served = Classifier::from_artifact(&store.get(&hash).unwrap()).unwrap();
    for example in examples.iter().take(50) {
        let a = trained.classifier.predict(&example.data).unwrap();
        let b = served.predict(&example.data).unwrap();
        assert_eq!(a, b);
        let total: f64 = b.probabilities.iter().map(|(_, p)| p).sum();
        assert!((total - 1.0).abs() < 1e-9);
    }

    // The same data trains the same model, byte for byte: the content hash is reproducible.
    let again = Classifier::train(&examples, &TrainOptions::default()).unwrap();
    assert_eq!(again.classifier.content_hash(), hash);
}

#[test]
fn fine_tuning_starts_from_the_parent_and_keeps_its_labels() {
    let examples = digits();
    let (first, second): (Vec<Example>, Vec<Example>) =
        examples.into_iter().partition(|e| e.key.0[31] % 2 == 0);
    let parent = Classifier::train(&first, &TrainOptions::default()).unwrap();
    let options = TrainOptions {
        max_iterations: 20,
        ..TrainOptions::default()
    };
    let child = parent.classifier.finetune(&second, &options).unwrap();
    let child_eval = child.evaluation.unwrap();
    assert_eq!(child.classifier.classes, parent.classifier.classes);
    assert_ne!(
        child.classifier.content_hash(),
        parent.classifier.content_hash()
    );
    // Started from good weights, twenty iterations are enough to stay accurate; a model trained
    // from scratch with the same budget is worse.
    let scratch = Classifier::train(&second, &options).unwrap();
    assert!(
        child_eval.accuracy > 0.93,
        "fine-tuned {:.3}",
        child_eval.accuracy
    );
    assert!(child_eval.accuracy >= scratch.evaluation.unwrap().accuracy - 0.01);

    let without_nines: Vec<Example> = second.into_iter().filter(|e| e.label != "9").collect();
    assert!(matches!(
        parent.classifier.finetune(&without_nines, &options),
        Err(TrainError::MissingClass(label)) if label == "9"
    ));
}

/// Short product reviews, built from word lists so the test needs no download.
fn reviews() -> Vec<Example> {
    let good = ["great", "love", "excellent", "perfect", "happy", "works"];
    let bad = [
        "broken",
        "terrible",
        "refund",
        "awful",
        "disappointed",
        "fails",
    ];
    let neutral = [
        "the", "phone", "battery", "screen", "arrived", "it", "case", "day",
    ];
    (0..400u32)
        .map(|n| {
            let positive = n % 2 == 0;
            let words = if positive { &good } else { &bad };
            let text = format!(
                "{} {} {} {} {}",
                neutral[(n as usize) % neutral.len()],
                words[(n as usize / 2) % words.len()],
                neutral[(n as usize / 3) % neutral.len()],
                words[(n as usize / 5) % words.len()],
                neutral[(n as usize / 7) % neutral.len()],
            );
            Example {
                key: keccak256(&n.to_be_bytes()),
                data: json!({ "id": n, "text": text }),
                label: if positive { "positive" } else { "negative" }.into(),
            }
        })
        .collect()
}

#[test]
fn text_items_train_a_tfidf_classifier_and_bad_input_is_named() {
    let examples = reviews();
    let trained = Classifier::train(&examples, &TrainOptions::default()).unwrap();
    assert!(trained.classifier.features.describe().starts_with("TF-IDF"));
    assert_eq!(trained.evaluation.unwrap().accuracy, 1.0);
    let prediction = trained
        .classifier
        .predict(&json!({"text": "Terrible, it arrived broken. Refund please."}))
        .unwrap();
    assert_eq!(prediction.label, "negative");
    assert!(prediction.confidence > 0.5);
    assert_eq!(
        trained
            .classifier
            .predict(&json!({"body": "great"}))
            .unwrap_err()
            .to_string(),
        "field \"text\" is missing from the item data; send every field the model was trained on"
    );

    let one_label: Vec<Example> = examples
        .into_iter()
        .filter(|e| e.label == "positive")
        .collect();
    assert!(matches!(
        Classifier::train(&one_label, &TrainOptions::default()),
        Err(TrainError::TooFewClasses(_))
    ));
    let damaged = Classifier::from_artifact(b"{\"format\": 7}").unwrap_err();
    assert!(
        damaged.contains("not a caravan classifier artifact"),
        "{damaged}"
    );
}
